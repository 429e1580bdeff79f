/* hyperalloc-hostile mode: a guest that lies to the HyperAlloc device. The device
 * must reject every bad zone record, refuse to act on corrupted LLFree words, answer
 * every bad install request with an error status, and keep answering installs after
 * each step; the VMM must neither crash nor grow (tests/integration/
 * hyperalloc_hostile.sh checks the host side and the log).
 *
 * Whether a record was taken is probed with installs (when the device returns a
 * status): an install for a zone the device does not know answers ERR_ZONE. */
#include "hyperalloc.h"

static unsigned failures;
static uint64_t fake_pfn;                /* a 4 MiB block for the arrays of fake records */

#define HFAIL(...) (kprintf("TESTGUEST: FAIL HA: hostile " __VA_ARGS__), failures++)
#define FAR_AWAY (1ull << 44)            /* beyond any guest RAM */
#define HOLE_ADDR 0xd0000000ull          /* the 3-4 GiB MMIO hole */

/* What a probe showed: without install statuses (no INDIRECT_DESC) only that the
 * device still answers; the test then relies on the device's bad_records count. */
static const char *verdict(void) { return ha.has_status ? "rejected" : "sent, device answers (no status)"; }

/* One install; checks the status when the device gives one. -1 if it did not answer. */
static int expect_install(const char *what, uint32_t node, uint32_t type, uint64_t frame, int want)
{
    int st = ha_install_raw(0, node, type, frame);
    if (st < 0) {
        failures++;
        return -1;
    }
    if (ha.has_status && want >= 0 && st != want)
        HFAIL("%s: install status %d, want %d\n", what, st, want);
    return 0;
}

static int alive(const char *after, int zone_known)
{
    return expect_install(after, 0, HA_ZONE_DMA32, 0, zone_known ? HA_INSTALL_OK : HA_INSTALL_ERR_ZONE);
}

/* Bad record i (a mutation of the good DMA32 record); 0 when there are no more. */
static const char *bad_record(unsigned i, struct ha_zone_record *r)
{
    const struct ha_zone_record good = ha.zones[0].rec;
    uint64_t low_end = good.pages * HA_PAGE;
    *r = good;
    switch (i) {
    case 0: r->trees_gpa = FAR_AWAY; return "trees outside RAM";
    case 1: r->lower_gpa = HOLE_ADDR; return "lower in the 3-4 GiB hole";
    case 2: r->trees_gpa += 8; return "trees misaligned";
    case 3: r->lower_gpa += 32; return "lower misaligned";
    case 4: r->lower_gpa = r->trees_gpa; return "arrays overlapping";
    case 5: r->lower_gpa = low_end - HA_PAGE; return "lower past the end of RAM";
    case 6: r->trees_gpa = ~0ull - 63; return "trees wrapping around";
    case 7: r->pages = 0; return "zero pages";
    case 8: r->pages = (uint32_t)(g.ram_end / HA_PAGE + LLF_CHILD_FRAMES); return "zone past the end of RAM";
    case 9: r->pages = 0xfffff000u; return "zone of 16 TiB";
    case 10: r->start_pfn = 0x7ff00000u; return "start_pfn beyond RAM";
    case 11: r->zone_type = 7; return "zone type 7";
    case 12: r->node = 3; return "node 3";
    case 13: r->free_pages_gpa += 4; return "free counter misaligned";
    case 14: r->free_pages_gpa = FAR_AWAY; return "free counter outside RAM";
    case 15: r->free_pages_gpa = HOLE_ADDR; return "free counter in the hole";
    case 16: r->free_pages_gpa = r->trees_gpa; return "free counter inside the trees array";
    case 17: r->file_pages_gpa += 2; return "file counter misaligned";
    default: return 0;
    }
}

static void send_bad_records(void)
{
    struct ha_zone_record r[3];
    unsigned n = 0;
    for (const char *name; (name = bad_record(n, &r[0])) != 0; n++) {
        if (ha_post_info(r, sizeof(r[0])) < 0 || alive(name, 0) < 0)
            return;
        kprintf("HA: hostile record %s: %s\n", name, verdict());
    }
    /* Lengths that are not a multiple of the record size (good records inside). */
    static const uint32_t lengths[] = { 1, 55, 57, 2 * sizeof(r[0]) + 1 };
    r[0] = r[1] = r[2] = ha.zones[0].rec;
    for (unsigned i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++, n++) {
        if (ha_post_info(r, lengths[i]) < 0 || alive("bad length", 0) < 0)
            return;
        kprintf("HA: hostile record buffer of %u bytes: %s\n", lengths[i], verdict());
    }
    kprintf("HA: hostile %u bad records %s\n", n, verdict());
}

/* Fake arrays for a record of `pages` pages from start_pfn, in the fake block. */
static struct ha_zone_record fake_record(uint32_t type, uint64_t start_pfn, uint64_t pages, unsigned slot)
{
    uint64_t base = fake_pfn * HA_PAGE + slot * HA_MIB, frames = start_pfn + pages - llf_base_pfn(start_pfn);
    struct ha_zone_record r = ha.zones[0].rec;
    r.zone_type = type;
    r.start_pfn = (uint32_t)start_pfn;
    r.pages = (uint32_t)pages;
    r.trees_gpa = base;
    r.lower_gpa = base + llf_align_up(llf_trees_bytes(frames), LLF_ALIGN);
    r.local_gpa = r.lower_gpa + llf_lower_bytes(frames);
    r.free_pages_gpa = r.local_gpa + LLF_MAX_CPUS * sizeof(struct llf_local);
    return r;
}

/* Records that are bad only next to the zone the device already has. */
static void send_conflicting_records(void)
{
    struct ha_zone_record r[2];
    uint64_t last = (ha.zones[0].pages - LLF_CHILD_FRAMES) & ~(uint64_t)(LLF_CHILD_FRAMES - 1);
    r[0] = fake_record(HA_ZONE_DMA32, 0, 8192, 0);
    if (ha_post_info(r, sizeof(r[0])) < 0)
        return;
    /* Had the duplicate replaced the zone, its last frame would be out of range. */
    if (expect_install("duplicate zone type", 0, HA_ZONE_DMA32, last, HA_INSTALL_OK) == 0)
        kprintf("HA: hostile record duplicate zone type: %s\n", verdict());
    int no_normal = ha.nzones == 1;
    r[0] = fake_record(HA_ZONE_NORMAL, 0x800, 4096, 0);
    if (ha_post_info(r, sizeof(r[0])) < 0 ||
        expect_install("zone overlapping DMA32", 0, HA_ZONE_NORMAL, 0, no_normal ? (int)HA_INSTALL_ERR_ZONE : -1) < 0)
        return;
    kprintf("HA: hostile record zone overlapping DMA32: %s\n", verdict());
    r[0] = fake_record(HA_ZONE_MOVABLE, 0x800, 4096, 0);
    r[1] = fake_record(HA_ZONE_MOVABLE, 0x1000, 4096, 1);
    if (ha_post_info(r, sizeof(r)) < 0 ||
        expect_install("two overlapping records", 0, HA_ZONE_MOVABLE, 0, HA_INSTALL_ERR_ZONE) < 0)
        return;
    kprintf("HA: hostile record pair overlapping each other and DMA32: %s\n", verdict());
}

static volatile uint16_t *child_word(const struct llfree *l, uint64_t c)
{
    return (volatile uint16_t *)(l->lower + llf_child_entry_offset(l->frames, c));
}

/* A free, not reclaimed child from the top of the zone (the host may take others). */
static uint64_t find_child(const struct llfree *l, uint64_t skip)
{
    for (uint64_t c = llf_children(l->frames); c-- > 0;) {
        uint16_t e = llf_child_entry(l, c);
        if (c != skip && llf_child_free(e) == LLF_CHILD_FRAMES && !llf_child_huge(e) && !llf_child_reclaimed(e))
            return c;
    }
    return ~0ull;
}

static void restore16(volatile uint16_t *w, uint16_t corrupted, uint16_t old, const char *what)
{
    uint16_t expected = corrupted;
    if (!__atomic_compare_exchange_n(w, &expected, old, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        HFAIL("the host changed the corrupted %s 0x%x to 0x%x\n", what, corrupted, expected);
        *w = old;
    }
}

/* Corrupts a child (free 600), another child (huge with 512 free), a tree (free 8000)
 * and the free counter (+2^50) for ha_corrupt_s seconds, in which the test shrinks the
 * balloon and auto mode runs; the host must leave them alone. Then restores them. */
static void corrupt_state(void)
{
    struct ha_zone *z = &ha.zones[0];
    const struct llfree *l = &z->llf;
    uint64_t c1 = find_child(l, ~0ull), c2 = find_child(l, c1);
    if (c1 == ~0ull || c2 == ~0ull) {
        HFAIL("no free child to corrupt\n");
        return;
    }
    uint64_t tree = c1 / LLF_TREE_CHILDREN, seconds = cmdline_u64("ha_corrupt_s", 3);
    volatile uint16_t *w1 = child_word(l, c1), *w2 = child_word(l, c2), *wt = &l->tree_entries[tree];
    uint16_t o1 = *w1, o2 = *w2, ot = *wt;
    uint16_t b1 = llf_child_make(600, false, false), b2 = llf_child_make(LLF_CHILD_FRAMES, true, false);
    uint16_t bt = (uint16_t)((ot & ~LLF_TREE_FREE_MASK) | 8000u);
    *w1 = b1;
    *w2 = b2;
    if (!__atomic_compare_exchange_n(wt, &ot, bt, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        HFAIL("tree %lu changed while being corrupted\n", tree);
    __atomic_fetch_add(z->free_pages, (int64_t)1 << 50, __ATOMIC_RELAXED);
    kprintf("HA: hostile corrupted child %lu 0x%x->0x%x, child %lu 0x%x->0x%x, tree %lu 0x%x->0x%x, free counter "
            "+2^50 for %lu s\n", c1, o1, b1, c2, o2, b2, tree, ot, bt, seconds);
    uint64_t hz = tsc_hz(), t0 = rdtsc();
    while (rdtsc() - t0 < seconds * hz) {
        if (alive("corrupted state", 1) < 0)
            return;
        ha_poll_device(g.bsp_index);
        for (uint64_t t = rdtsc() + hz / 4; rdtsc() < t;)
            cpu_relax();
    }
    restore16(w1, b1, o1, "child entry (free 600)");
    restore16(w2, b2, o2, "child entry (huge, 512 free)");
    restore16(wt, bt, ot, "tree entry (free 8000)");
    __atomic_fetch_sub(z->free_pages, (int64_t)1 << 50, __ATOMIC_RELAXED);
    kprintf("HA: hostile restored\n");
}

/* One request through hand-made indirect descriptors; it must be answered. */
static int raw_request(const char *what, uint32_t req_len, uint32_t status_len, uint16_t status_flags)
{
    struct ha_install_queue *iq = &ha.iq[0];
    *iq->req = (struct ha_install_request){ 0, HA_ZONE_DMA32, 0 };
    unsigned n = 0;
    if (req_len)
        iq->table[n++] = (struct virtq_desc){ (uint64_t)iq->req, req_len, 0, 0 };
    if (status_len)
        iq->table[n++] = (struct virtq_desc){ (uint64_t)iq->status, status_len, status_flags, 0 };
    if (n == 2)
        iq->table[0].flags = VIRTQ_DESC_F_NEXT, iq->table[0].next = 1;
    iq->q.desc[0] = (struct virtq_desc){ (uint64_t)iq->table, 16 * n, VIRTQ_DESC_F_INDIRECT, 0 };
    virtq_repost(&iq->q, 0);
    virtq_kick(&ha.dev, &iq->q);
    uint32_t id, len;
    if (!virtq_poll(&iq->q, 5000, &id, &len)) {
        HFAIL("%s: no completion in 5 s\n", what);
        return -1;
    }
    kprintf("HA: hostile request %s: answered (used len %u)\n", what, len);
    return alive(what, 1);
}

static void bad_installs(void)
{
    const struct ha_zone *z = &ha.zones[0];
    uint32_t dma = HA_ZONE_DMA32;
    if (expect_install("unaligned frame", 0, dma, LLF_CHILD_FRAMES + 1, HA_INSTALL_OK) < 0 ||
        expect_install("frame past the zone", 0, dma, z->llf.frames, HA_INSTALL_ERR_RANGE) < 0 ||
        expect_install("frame 2^60", 0, dma, 1ull << 60, HA_INSTALL_ERR_RANGE) < 0 ||
        expect_install("frame ~0", 0, dma, ~0ull, HA_INSTALL_ERR_RANGE) < 0 ||
        expect_install("zone type 7", 0, 7, 0, HA_INSTALL_ERR_ZONE) < 0 ||
        expect_install("node 1", 1, dma, 0, HA_INSTALL_ERR_ZONE) < 0 ||
        expect_install("zone NORMAL", 0, HA_ZONE_NORMAL, 0, ha.nzones == 1 ? (int)HA_INSTALL_ERR_ZONE : -1) < 0)
        return;
    kprintf("HA: hostile installs of bad frames and zones: answered%s\n", ha.has_status ? " with errors" : "");
    /* A frame the host holds (the test starts with a balloon target). */
    for (uint64_t c = 0; c < llf_children(z->llf.frames); c++) {
        if (llf_child_entry(&z->llf, c) == llf_child_make(0, true, true)) {
            if (expect_install("hard-reclaimed frame", 0, dma, c * LLF_CHILD_FRAMES, HA_INSTALL_ERR_HARD) < 0)
                return;
            /* The host keeps it (the test does not change the target meanwhile). */
            if (llf_child_entry(&z->llf, c) != llf_child_make(0, true, true))
                HFAIL("install of hard-reclaimed child %lu changed it to 0x%x\n", c, llf_child_entry(&z->llf, c));
            kprintf("HA: hostile install of hard-reclaimed child %lu: %s\n", c, ha.has_status ? "refused" : "answered");
            break;
        }
    }
    if (ha.has_status && (raw_request("short request", 8, 4, VIRTQ_DESC_F_WRITE) < 0 ||
                          raw_request("read-only status", 16, 4, 0) < 0 ||
                          raw_request("2-byte status", 16, 2, VIRTQ_DESC_F_WRITE) < 0 ||
                          raw_request("status only", 0, 4, VIRTQ_DESC_F_WRITE) < 0))
        return;
}

/* Installs of frames the guest keeps forever (below reserved_end): each is a no-op
 * for the host, so any memory the VMM gains meanwhile is a leak. */
static void storm(void)
{
    uint64_t n = cmdline_u64("ha_storm", 100000), rng = rdtsc() | 1, bad = 0, t0 = rdtsc();
    const struct ha_zone *z = &ha.zones[0];
    uint64_t frames = ha.reserved_end / HA_PAGE - z->llf.base_pfn;
    for (uint64_t i = 0; i < n; i++) {
        int st = ha_install_raw(0, 0, z->type, ha_rand(&rng) % frames);
        if (st < 0) {
            failures++;
            return;
        }
        bad += st != HA_INSTALL_OK;
    }
    if (bad)
        HFAIL("storm: %lu of %lu installs of never-reclaimed frames failed\n", bad, n);
    kprintf("HA: hostile storm of %lu installs in %lu ms\n", n, (rdtsc() - t0) / (tsc_hz() / 1000));
    spin_seconds(1);                     /* a quiet second for the host's RSS sample */
}

void run_hyperalloc_hostile(void)
{
    unsigned cpu = g.bsp_index;
    if (ha_setup_zones() < 0 || ha_device_init() < 0)
        return;
    if (alive("start", 0) < 0)
        return;
    send_bad_records();
    if (ha_post_zones() < 0 || ha_alloc_any(cpu, LLF_MAX_ORDER, 0, &fake_pfn) != LLF_OK)
        return;
    memset((void *)(fake_pfn * HA_PAGE), 0, HA_PAGE << LLF_MAX_ORDER);
    send_conflicting_records();
    corrupt_state();
    bad_installs();
    storm();
    if (ha_free(cpu, fake_pfn, LLF_MAX_ORDER) < 0 || alive("the hostile steps", 1) < 0)
        return;
    /* The allocator and the host still agree: a short verified workload. */
    if (ha_workload(cpu, 16, cmdline_u64("seconds", 2), 1) < 0 || ha_check_consistency("after hostile") < 0)
        failures++;
    if (failures || ha.cpu[cpu].mismatches)
        kprintf("TESTGUEST: FAIL HA: hostile done with %u failures, %lu mismatches\n", failures,
                ha.cpu[cpu].mismatches);
    else
        kprintf("HA: hostile done\n");
}
