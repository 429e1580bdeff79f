/* HyperAlloc modes: what the guest does with its memory while the host reclaims,
 * returns and installs frames underneath it.
 *
 * Every block the workload holds is filled with a pattern derived from each qword's
 * address and the block's generation (a number never reused), and verified in full
 * before it is freed and once a second while it is held. A frame the host took away
 * while the guest held it reads back as zeros (or another block's data if the host
 * gave it to the wrong place): either way a MISMATCH line. */
#include "hyperalloc.h"

#define WL_SLOTS 8192u                   /* blocks held at once, per CPU */
#define WL_TABLE_ORDER 5u                /* WL_SLOTS x 16 bytes = 128 KiB */
#define MAX_MISMATCH_LINES 20

struct wl_block {
    uint64_t pfn;
    uint64_t gen_order;                  /* generation << 8 | order */
};

static unsigned mismatch_lines;

uint64_t ha_rand(uint64_t *s)
{
    uint64_t x = *s;                     /* xorshift64* */
    x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

#define PAT_ADDR_MUL 0x9e3779b97f4a7c15ull
#define PAT_GEN_MUL 0xd6e8feb86659fd93ull
#define PAT_XOR 0xa5a5a5a55a5a5a5aull

uint64_t ha_pattern(uint64_t addr, uint64_t gen) { return (addr * PAT_ADDR_MUL) ^ (gen * PAT_GEN_MUL) ^ PAT_XOR; }

void ha_fill(uint64_t pfn, unsigned order, uint64_t gen)
{
    uint64_t *p = (uint64_t *)(pfn * HA_PAGE), n = (HA_PAGE / 8) << order;
    uint64_t x = pfn * HA_PAGE * PAT_ADDR_MUL, g = (gen * PAT_GEN_MUL) ^ PAT_XOR;
    for (uint64_t i = 0; i < n; i++, x += 8 * PAT_ADDR_MUL)
        p[i] = x ^ g;
}

uint64_t ha_verify(uint64_t pfn, unsigned order, uint64_t gen, const char *what)
{
    const volatile uint64_t *p = (const volatile uint64_t *)(pfn * HA_PAGE);
    uint64_t n = (HA_PAGE / 8) << order, bad = 0, first = 0;
    uint64_t x = pfn * HA_PAGE * PAT_ADDR_MUL, g = (gen * PAT_GEN_MUL) ^ PAT_XOR;
    for (uint64_t i = 0; i < n; i++, x += 8 * PAT_ADDR_MUL) {
        if (p[i] != (x ^ g) && bad++ == 0)
            first = i;
    }
    if (bad && __atomic_fetch_add(&mismatch_lines, 1, __ATOMIC_RELAXED) < MAX_MISMATCH_LINES) {
        uint64_t addr = pfn * HA_PAGE + first * 8;
        kprintf("HA: MISMATCH %s block pfn 0x%lx order %u gen %lu: %lu bad qwords, first at 0x%lx read 0x%lx "
                "want 0x%lx\n", what, pfn, order, gen, bad, addr, p[first], ha_pattern(addr, gen));
    }
    return bad;
}

int ha_touch_all(unsigned cpu)
{
    static const unsigned orders[] = { LLF_CHILD_ORDER, 0 };
    uint64_t t0 = rdtsc(), head = 0, frames = 0, blocks = 0;
    for (unsigned o = 0; o < 2; o++) {
        for (;;) {
            uint64_t pfn;
            int rc = ha_alloc_any(cpu, orders[o], blocks, &pfn);
            if (rc == LLF_ENOMEM)
                break;
            if (rc != LLF_OK)
                return -1;
            uint64_t base = pfn * HA_PAGE;
            for (uint64_t p = 1; p < (1ul << orders[o]); p++)
                *(volatile uint64_t *)(base + p * HA_PAGE) = ha_pattern(base + p * HA_PAGE, 1);
            *(volatile uint64_t *)base = head;   /* the list lives in the blocks */
            head = pfn << 4 | orders[o];
            frames += 1ul << orders[o];
            blocks++;
        }
    }
    while (head) {
        uint64_t pfn = head >> 4, next = *(volatile uint64_t *)(pfn * HA_PAGE);
        if (ha_free(cpu, pfn, (unsigned)(head & 15)) < 0)
            return -1;
        head = next;
    }
    ha.cpu[cpu].enomem = 0;                  /* running out was the point */
    kprintf("HA: touched %lu MiB in %lu ms (%lu blocks)\n", frames * HA_PAGE / HA_MIB,
            (rdtsc() - t0) / (tsc_hz() / 1000), blocks);
    return 0;
}

void ha_print_status(uint64_t t_s, uint64_t held_frames)
{
    struct ha_cpu_stats sum = { 0 };
    for (unsigned c = 0; c < MAX_CPUS; c++) {
        sum.allocs += ha.cpu[c].allocs;
        sum.installs += ha.cpu[c].installs;
        sum.install_errors += ha.cpu[c].install_errors;
        sum.enomem += ha.cpu[c].enomem;
        sum.mismatches += ha.cpu[c].mismatches;
        sum.held_frames += ha.cpu[c].held_frames;
    }
    if (held_frames)
        sum.held_frames = held_frames;
    kprintf("HA: t=%lus held=%lu MiB free=%lu MiB allocs=%lu installs=%lu mismatches=%lu enomem=%lu "
            "install_errors=%lu cache=%lu MiB\n", t_s, sum.held_frames * HA_PAGE / HA_MIB,
            ha_free_counter_pages() * HA_PAGE / HA_MIB, sum.allocs, sum.installs, sum.mismatches, sum.enomem,
            sum.install_errors, ha.cache_count * HA_PAGE / HA_MIB);
}

static void verify_all(struct ha_cpu_stats *st, const struct wl_block *b, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        st->mismatches += ha_verify(b[i].pfn, b[i].gen_order & 0xff, b[i].gen_order >> 8, "held") != 0;
        st->verified_blocks++;
    }
}

/* Verifies block i, frees it and moves the last block into its slot. */
static int drop_block(unsigned cpu, struct wl_block *b, uint64_t *n, uint64_t i)
{
    struct ha_cpu_stats *st = &ha.cpu[cpu];
    unsigned order = b[i].gen_order & 0xff;
    st->mismatches += ha_verify(b[i].pfn, order, b[i].gen_order >> 8, "freed") != 0;
    st->verified_blocks++;
    if (ha_free(cpu, b[i].pfn, order) < 0)
        return -1;
    st->held_frames -= 1ul << order;
    b[i] = b[--*n];
    return 0;
}

int ha_workload(unsigned cpu, uint64_t hold_mib, uint64_t seconds, int report)
{
    struct ha_cpu_stats *st = &ha.cpu[cpu];
    uint64_t table_pfn, n = 0, hold = hold_mib * (HA_MIB / HA_PAGE);
    if (ha_alloc_any(cpu, WL_TABLE_ORDER, cpu, &table_pfn) != LLF_OK) {
        kprintf("TESTGUEST: FAIL HA: cpu %u: no memory for the workload's table\n", cpu);
        return -1;
    }
    struct wl_block *b = (struct wl_block *)(table_pfn * HA_PAGE);
    uint64_t rng = (rdtsc() | 1) ^ ((uint64_t)(cpu + 1) << 40), gen = (uint64_t)cpu << 40;
    uint64_t hz = tsc_hz(), t0 = rdtsc(), next = t0 + hz;
    int failed = 0;
    while (!failed) {
        uint64_t now = rdtsc();
        if (now >= next) {
            next = next + hz > now ? next + hz : now + hz;
            verify_all(st, b, n);
            if (report) {
                ha_poll_device(cpu);
                ha_print_status((now - t0) / hz, 0);
            }
            if (seconds && now - t0 >= seconds * hz)
                break;
        }
        uint64_t r = ha_rand(&rng);
        unsigned order = (unsigned)(r % (LLF_MAX_ORDER + 1));
        uint64_t size = 1ul << order;
        int over = st->held_frames + size > hold;
        if (!n && over)
            continue;
        if (!n || (!over && n < WL_SLOTS && (r >> 8) % 3 != 0)) {
            uint64_t pfn;
            int rc = ha_alloc_any(cpu, order, r >> 16, &pfn);
            if (rc == LLF_OK) {
                ha_fill(pfn, order, ++gen);
                b[n++] = (struct wl_block){ pfn, gen << 8 | order };
                st->held_frames += size;
                continue;
            }
            failed = rc != LLF_ENOMEM;
            if (!n)
                continue;                    /* out of memory and nothing to give back */
        }
        failed = failed || drop_block(cpu, b, &n, (r >> 24) % n) < 0;
    }
    while (n && drop_block(cpu, b, &n, n - 1) == 0)
        ;
    if (ha_free(cpu, table_pfn, WL_TABLE_ORDER) < 0 || failed)
        return -1;
    return 0;
}
