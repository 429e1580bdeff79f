/* The HyperAlloc modes of the test guest (docs/test-guest.md):
 *   hyperalloc         touch all memory, then a random verified working set
 *   hyperalloc-free    hold a large block set for a while, free it, small working set
 *   hyperalloc-bench   time installs of soft-reclaimed frames
 *   hyperalloc-hostile bad records, corrupted state, bad installs (hyperalloc_hostile.c)
 * Options: testguest.seconds, ha_hold, ha_cache, hold_s, ha_small, wait_s, ha_bench_mib. */
#include "hyperalloc.h"

static uint64_t ms_of(uint64_t cycles) { return cycles / (tsc_hz() / 1000); }
static uint64_t us_of(uint64_t cycles) { return cycles / (tsc_hz() / 1000000); }

static int start(unsigned cpu, int touch)
{
    if (ha_setup_zones() < 0 || ha_device_init() < 0 || ha_post_zones() < 0)
        return -1;
    return touch ? ha_touch_all(cpu) : 0;
}

static void ready(void)
{
    kprintf("HA: ready zones=%u free_mib=%lu\n", ha.nzones, ha_free_counter_pages() * HA_PAGE / HA_MIB);
}

static uint64_t total_mismatches(void)
{
    uint64_t m = 0;
    for (unsigned c = 0; c < MAX_CPUS; c++)
        m += ha.cpu[c].mismatches;
    return m;
}

static void finish(int rc)
{
    if (ha_check_consistency("at the end") < 0)
        rc = -1;
    uint64_t m = total_mismatches();
    if (rc < 0 || m)
        kprintf("TESTGUEST: FAIL HA: done mismatches=%lu\n", m);
    else
        kprintf("HA: done mismatches=0\n");
}

static uint64_t default_hold_mib(void) { return ha.ram_bytes / 4 / HA_MIB; }

/* testguest.smp=1: the APs run the hyperalloc workload too, each on its own install
 * queue, with an equal share of ha_hold. They wait (spinning) for the BSP's set-up. */
static struct {
    int go;                              /* 1 run, -1 the BSP's set-up failed */
    unsigned done, failed;
    uint64_t hold_mib, seconds;
} smp_run;

static unsigned started_aps(void)
{
    unsigned n = 0;
    for (unsigned i = 0; g.run_aps && i < g.cpu_count; i++)
        n += i != g.bsp_index && g.cpus[i].arrived;
    return n;
}

static void release_aps(int go) { __atomic_store_n(&smp_run.go, go, __ATOMIC_RELEASE); }

int run_hyperalloc_ap(const char *name, unsigned cpu)
{
    if (strnlen(name, 32) != 10 || memcmp(name, "hyperalloc", 10) != 0)
        return 0;
    int go;
    while ((go = __atomic_load_n(&smp_run.go, __ATOMIC_ACQUIRE)) == 0)
        cpu_relax();
    if (go > 0 && ha_workload(cpu, smp_run.hold_mib, smp_run.seconds, 0) < 0)
        __atomic_add_fetch(&smp_run.failed, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&smp_run.done, 1, __ATOMIC_RELEASE);
    return 1;
}

static void mode_hyperalloc(unsigned cpu)
{
    unsigned aps = started_aps();
    if (start(cpu, 1) < 0 || ha_cache_fill(cpu, cmdline_u64("ha_cache", 0)) < 0) {
        release_aps(-1);
        return;
    }
    if (aps && ha.install_queues < g.cpu_count) {
        kprintf("TESTGUEST: FAIL HA: %u cpus but %u install queues\n", g.cpu_count, ha.install_queues);
        release_aps(-1);
        return;
    }
    ready();
    smp_run.hold_mib = cmdline_u64("ha_hold", default_hold_mib()) / (aps + 1);
    smp_run.seconds = cmdline_u64("seconds", 0);
    if (aps)
        kprintf("HA: smp: the workload runs on %u cpus, %lu MiB each\n", aps + 1, smp_run.hold_mib);
    release_aps(1);
    int rc = ha_workload(cpu, smp_run.hold_mib, smp_run.seconds, 1);
    uint64_t hz = tsc_hz(), t0 = rdtsc();
    while (__atomic_load_n(&smp_run.done, __ATOMIC_ACQUIRE) < aps && rdtsc() - t0 < 30 * hz)
        cpu_relax();
    if (smp_run.done < aps || smp_run.failed) {
        kprintf("TESTGUEST: FAIL HA: smp: %u of %u APs finished, %u failed\n", smp_run.done, aps, smp_run.failed);
        rc = -1;
    }
    finish(rc);
}

/* A table of order-9 blocks (absolute pfns), itself allocated from LLFree. */
static uint64_t *alloc_table(unsigned cpu, uint64_t entries, unsigned *order)
{
    uint64_t pfn;
    for (*order = 0; *order < LLF_MAX_ORDER && (HA_PAGE << *order) < entries * 8; ++*order)
        ;
    if ((HA_PAGE << *order) < entries * 8 || ha_alloc_any(cpu, *order, 0, &pfn) != LLF_OK) {
        kprintf("TESTGUEST: FAIL HA: no table for %lu entries\n", entries);
        return 0;
    }
    return (uint64_t *)(pfn * HA_PAGE);
}

static int free_blocks(unsigned cpu, const uint64_t *pfns, uint64_t n, int verify)
{
    for (uint64_t i = 0; i < n; i++) {
        if (verify)
            ha.cpu[cpu].mismatches += ha_verify(pfns[i], LLF_CHILD_ORDER, i + 1, "held") != 0;
        if (ha_free(cpu, pfns[i], LLF_CHILD_ORDER) < 0)
            return -1;
    }
    return 0;
}

/* Holds ha_hold MiB (order-9 blocks, patterned) for hold_s seconds, frees it all,
 * then keeps a small working set (ha_small MiB) for `seconds` seconds. */
static void mode_hyperalloc_free(unsigned cpu)
{
    if (start(cpu, 1) < 0)
        return;
    ready();
    uint64_t want = cmdline_u64("ha_hold", default_hold_mib()) / 2, hold_s = cmdline_u64("hold_s", 5), n = 0;
    unsigned table_order;
    uint64_t *pfns = alloc_table(cpu, want, &table_order);
    if (!pfns)
        return;
    while (n < want && ha_alloc_any(cpu, LLF_CHILD_ORDER, n, &pfns[n]) == LLF_OK) {
        ha_fill(pfns[n], LLF_CHILD_ORDER, n + 1);
        n++;
    }
    uint64_t held = n * LLF_CHILD_FRAMES * HA_PAGE / HA_MIB;
    kprintf("HA: holding %lu MiB for %lu s\n", held, hold_s);
    uint64_t hz = tsc_hz(), t0 = rdtsc();
    for (uint64_t s = 1; s <= hold_s; s++) {
        while (rdtsc() - t0 < s * hz)
            cpu_relax();
        ha_poll_device(cpu);
        ha_print_status(s, n * LLF_CHILD_FRAMES);
    }
    if (free_blocks(cpu, pfns, n, 1) < 0 || ha_free(cpu, (uint64_t)pfns / HA_PAGE, table_order) < 0)
        return;
    kprintf("HA: freed %lu MiB\n", held);
    finish(ha_workload(cpu, cmdline_u64("ha_small", 8), cmdline_u64("seconds", 0), 1));
}

/* Free children not yet soft-reclaimed, and all free children (absolute counts). */
static void count_free_children(uint64_t *unreclaimed, uint64_t *free_children)
{
    *unreclaimed = *free_children = 0;
    for (unsigned i = 0; i < ha.nzones; i++) {
        const struct llfree *l = &ha.zones[i].llf;
        for (uint64_t c = 0; c < llf_children(l->frames); c++) {
            uint16_t e = llf_child_entry(l, c);
            if (llf_child_free(e) != LLF_CHILD_FRAMES || llf_child_huge(e))
                continue;
            ++*free_children;
            *unreclaimed += !llf_child_reclaimed(e);
        }
    }
}

static void print_rate(const char *what, uint64_t frames2m, uint64_t cycles)
{
    uint64_t us = us_of(cycles) ? us_of(cycles) : 1;
    uint64_t centi_gib_s = frames2m * 100 * 1000000 / (us * 512);   /* 512 x 2 MiB = 1 GiB */
    /* kprintf pads only %x: the fraction digits one by one. */
    kprintf("HA-BENCH %s=%lu ms=%lu.%lu%lu%lu gib_per_s=%lu.%lu%lu\n", what, frames2m, us / 1000, us / 100 % 10,
            us / 10 % 10, us % 10, centi_gib_s / 100, centi_gib_s / 10 % 10, centi_gib_s % 10);
}

/* Waits until the host soft-reclaimed every free frame, then allocates ha_bench_mib
 * MiB in 2 MiB blocks (each needs an install) and times it; then times the touch and
 * the frees. */
static void mode_hyperalloc_bench(unsigned cpu)
{
    if (start(cpu, 0) < 0)
        return;
    uint64_t free_mib = ha_free_counter_pages() * HA_PAGE / HA_MIB;
    uint64_t mib = cmdline_u64("ha_bench_mib", free_mib / 2 < 1024 ? free_mib / 2 : 1024);
    uint64_t want = mib / 2, wait_s = cmdline_u64("wait_s", 30), n = 0, unreclaimed, free_children;
    unsigned table_order;
    uint64_t *pfns = alloc_table(cpu, want, &table_order);
    if (!pfns)
        return;
    uint64_t hz = tsc_hz(), t0 = rdtsc();
    for (;;) {
        count_free_children(&unreclaimed, &free_children);
        if ((unreclaimed == 0 && free_children > 0) || rdtsc() - t0 > wait_s * hz)
            break;
        for (uint64_t t = rdtsc() + hz / 20; rdtsc() < t;)
            cpu_relax();
    }
    kprintf("HA-BENCH waited %lu ms: %lu of %lu free 2 MiB frames soft-reclaimed\n", ms_of(rdtsc() - t0),
            free_children - unreclaimed, free_children);
    if (unreclaimed)
        kprintf("HA-BENCH note: not every free frame was reclaimed (auto mode off or slow?)\n");

    uint64_t installs0 = ha.cpu[cpu].installs, t1 = rdtsc();
    while (n < want && ha_alloc_any(cpu, LLF_CHILD_ORDER, n, &pfns[n]) == LLF_OK)
        n++;
    uint64_t t2 = rdtsc(), installs = ha.cpu[cpu].installs - installs0;
    print_rate("installs", installs, t2 - t1);
    kprintf("HA-BENCH allocated %lu MiB in %lu blocks\n", n * 2, n);
    for (uint64_t i = 0; i < n; i++)
        ha_fill(pfns[i], LLF_CHILD_ORDER, i + 1);
    print_rate("touched", n, rdtsc() - t2);
    for (uint64_t i = 0; i < n; i++)
        ha.cpu[cpu].mismatches += ha_verify(pfns[i], LLF_CHILD_ORDER, i + 1, "bench") != 0;
    uint64_t t3 = rdtsc();
    if (free_blocks(cpu, pfns, n, 0) < 0)
        return;
    print_rate("freed", n, rdtsc() - t3);
    if (ha_free(cpu, (uint64_t)pfns / HA_PAGE, table_order) < 0)
        return;
    finish(n == want ? 0 : (kprintf("TESTGUEST: FAIL HA-BENCH: only %lu of %lu blocks\n", n, want), -1));
}

int run_hyperalloc_mode(const char *name)
{
    static const char *const names[] = { "hyperalloc", "hyperalloc-free", "hyperalloc-bench",
                                         "hyperalloc-hostile" };
    unsigned i = 0, n = sizeof(names) / sizeof(names[0]), cpu = g.bsp_index;
    size_t len = strnlen(name, 32);
    while (i < n && !(len == strnlen(names[i], 32) && !memcmp(name, names[i], len)))
        i++;
    switch (i) {
    case 0: mode_hyperalloc(cpu); break;   /* with testguest.smp=1 on every CPU */
    case 1: mode_hyperalloc_free(cpu); break;
    case 2: mode_hyperalloc_bench(cpu); break;
    case 3: run_hyperalloc_hostile(); break;
    default: return 0;
    }
    return 1;
}
