/* HyperAlloc modes: the guest's LLFree zones over its e820 RAM.
 *
 * DMA32 covers the RAM below 4 GiB (start pfn 0), NORMAL the RAM above it (start pfn
 * 0x100000), each one LLFree instance as a Linux guest would have. The metadata
 * (trees, lower arrays, per-CPU hints, the shared free-page counters and the
 * file-pages counter) lives in RAM the guest reserves at HA_META_BASE (6 MiB, right
 * after the DMA area); LLFree gets every RAM frame from the next 2 MiB boundary on.
 * Frames below that (low memory with the zero page and command line, the image, the
 * DMA area, the metadata) and hole frames stay allocated forever. */
#include "hyperalloc.h"

struct ha_state ha NOCLEAR;   /* cleared at CPL3 in ha_setup_zones (CPL0 clearing is slow) */

#define HA_LOCAL_BYTES (LLF_MAX_CPUS * sizeof(struct llf_local))
#define FOUR_GIB (1ull << 32)
#define NORMAL_START_PFN 0x100000ull

static uint64_t meta_next = HA_META_BASE;

/* 64-byte aligned bump allocation from the metadata area (zeroed). */
static void *meta_alloc(uint64_t bytes)
{
    meta_next = (meta_next + LLF_ALIGN - 1) & ~(uint64_t)(LLF_ALIGN - 1);
    void *p = (void *)meta_next;
    meta_next += (bytes + LLF_ALIGN - 1) & ~(uint64_t)(LLF_ALIGN - 1);
    return p;
}

static uint64_t clip_mapped(uint64_t end) { return end > g.mapped_limit ? g.mapped_limit : end; }

/* End (exclusive, bytes) of RAM in [lo, hi), clipped to the identity map; 0 if none. */
static uint64_t ram_end_in(uint64_t lo, uint64_t hi)
{
    uint64_t end = 0;
    for (unsigned i = 0; i < g.e820_count; i++) {
        if (g.e820[i].type != 1)
            continue;
        uint64_t s = g.e820[i].addr, e = clip_mapped(s + g.e820[i].size);
        if (e > hi)
            e = hi;
        if (s < lo)
            s = lo;
        if (e > s && e > end)
            end = e;
    }
    return end & ~(HA_PAGE - 1);
}

static void zone_define(uint32_t type, uint64_t start_pfn, uint64_t end_pfn)
{
    struct ha_zone *z = &ha.zones[ha.nzones++];
    z->type = type;
    z->start_pfn = start_pfn;
    z->pages = end_pfn - start_pfn;
}

/* Lays out one instance's arrays in the metadata area and fills the record. */
static int zone_init(struct ha_zone *z)
{
    uint64_t base = llf_base_pfn(z->start_pfn);
    uint64_t frames = z->start_pfn + z->pages - base;
    void *trees = meta_alloc(llf_trees_bytes(frames));
    void *lower = meta_alloc(llf_lower_bytes(frames));
    struct llf_local *local = meta_alloc(HA_LOCAL_BYTES);
    z->free_pages = meta_alloc(LLF_ALIGN);          /* own cache line: hot on every get/put */
    if (!ram_range_ok(HA_META_BASE, meta_next - HA_META_BASE)) {
        kprintf("TESTGUEST: FAIL HA: metadata [0x%lx, 0x%lx) is not RAM\n", HA_META_BASE, meta_next);
        return -1;
    }
    int rc = llf_init(&z->llf, base, frames, trees, lower, local);
    if (rc != LLF_OK) {
        kprintf("TESTGUEST: FAIL HA: llf_init(base %lu, frames %lu) = %d\n", base, frames, rc);
        return -1;
    }
    z->rec = (struct ha_zone_record){
        .local_gpa = (uint64_t)local, .trees_gpa = (uint64_t)trees, .lower_gpa = (uint64_t)lower,
        .start_pfn = (uint32_t)z->start_pfn, .pages = (uint32_t)z->pages, .zone_type = z->type, .node = 0,
        .free_pages_gpa = (uint64_t)z->free_pages, .file_pages_gpa = 0,
    };
    return 0;
}

/* Frees every RAM frame of zone z at or above ha.reserved_end. */
static int zone_free_ram(struct ha_zone *z)
{
    uint64_t zs = z->start_pfn * HA_PAGE, ze = (z->start_pfn + z->pages) * HA_PAGE;
    for (unsigned i = 0; i < g.e820_count; i++) {
        if (g.e820[i].type != 1)
            continue;
        uint64_t s = g.e820[i].addr, e = clip_mapped(s + g.e820[i].size);
        s = s < zs ? zs : s;
        s = s < ha.reserved_end ? ha.reserved_end : s;
        e = e > ze ? ze : e;
        s = (s + HA_PAGE - 1) & ~(HA_PAGE - 1);
        e &= ~(HA_PAGE - 1);
        if (e <= s)
            continue;
        uint64_t first = s / HA_PAGE - z->llf.base_pfn;
        int rc = llf_init_free(&z->llf, first, (e - s) / HA_PAGE);
        if (rc != LLF_OK) {
            kprintf("TESTGUEST: FAIL HA: llf_init_free(%lu, %lu) = %d\n", first, (e - s) / HA_PAGE, rc);
            return -1;
        }
    }
    *z->free_pages = (int64_t)llf_free_frames(&z->llf);
    return 0;
}

int ha_setup_zones(void)
{
    memset(&ha, 0, sizeof(ha));
    for (unsigned i = 0; i < g.e820_count; i++)
        if (g.e820[i].type == 1)
            ha.ram_bytes += g.e820[i].size;
    uint64_t low_end = ram_end_in(0, FOUR_GIB), high_end = ram_end_in(FOUR_GIB, ~0ull);
    if (low_end <= HA_META_BASE + 8 * HA_MIB) {
        kprintf("TESTGUEST: FAIL HA: RAM below 4 GiB ends at 0x%lx (need > 14 MiB)\n", low_end);
        return -1;
    }
    zone_define(HA_ZONE_DMA32, 0, low_end / HA_PAGE);
    if (high_end > FOUR_GIB)
        zone_define(HA_ZONE_NORMAL, NORMAL_START_PFN, high_end / HA_PAGE);
    for (unsigned i = 0; i < ha.nzones; i++)
        if (zone_init(&ha.zones[i]) < 0)
            return -1;
    ha.file_pages = meta_alloc(LLF_ALIGN);
    for (unsigned i = 0; i < ha.nzones; i++)
        ha.zones[i].rec.file_pages_gpa = (uint64_t)ha.file_pages;
    ha.reserved_end = (meta_next + LLF_CHILD_BYTES - 1) & ~(LLF_CHILD_BYTES - 1);
    if (!ram_range_ok(HA_META_BASE, ha.reserved_end - HA_META_BASE)) {
        kprintf("TESTGUEST: FAIL HA: reserved area [0x%lx, 0x%lx) is not RAM\n", HA_META_BASE, ha.reserved_end);
        return -1;
    }
    for (unsigned i = 0; i < ha.nzones; i++)
        if (zone_free_ram(&ha.zones[i]) < 0)
            return -1;
    for (unsigned i = 0; i < ha.nzones; i++) {
        const struct ha_zone *z = &ha.zones[i];
        kprintf("HA: zone %u type %u start_pfn 0x%lx pages %lu base_pfn 0x%lx trees 0x%lx lower 0x%lx "
                "free %lu MiB\n", i, z->type, z->start_pfn, z->pages, z->llf.base_pfn, z->rec.trees_gpa,
                z->rec.lower_gpa, llf_free_frames(&z->llf) * HA_PAGE / HA_MIB);
    }
    return 0;
}

struct ha_zone *ha_zone_of(uint64_t pfn)
{
    for (unsigned i = 0; i < ha.nzones; i++) {
        struct ha_zone *z = &ha.zones[i];
        if (pfn >= z->llf.base_pfn && pfn < z->llf.base_pfn + z->llf.frames)
            return z;
    }
    return 0;
}

uint64_t ha_free_counter_pages(void)
{
    int64_t sum = 0;
    for (unsigned i = 0; i < ha.nzones; i++)
        sum += __atomic_load_n(ha.zones[i].free_pages, __ATOMIC_RELAXED);
    return sum < 0 ? 0 : (uint64_t)sum;
}

uint64_t ha_llfree_free_pages(void)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < ha.nzones; i++)
        sum += llf_free_frames(&ha.zones[i].llf);
    return sum;
}

int ha_check_consistency(const char *when)
{
    /* The host's hard reclaim and return change the tree counter, the child and the
     * shared counter one after the other: retry for a while before calling it wrong. */
    uint64_t end = rdtsc() + 3 * tsc_hz(), counter = 0, trees = 0, bad = 0;
    unsigned bad_zone = 0;
    for (;;) {
        counter = ha_free_counter_pages();
        trees = ha_llfree_free_pages();
        bad = 0;
        for (unsigned i = 0; i < ha.nzones && !bad; i++)
            if ((bad = llf_check(&ha.zones[i].llf)) != 0)
                bad_zone = i;
        if (counter == trees && !bad) {
            kprintf("HA: consistent %s: free counter %lu pages = llfree %lu pages\n", when, counter, trees);
            return 0;
        }
        if (rdtsc() > end)
            break;
        for (uint64_t t = rdtsc() + tsc_hz() / 20; rdtsc() < t;)
            cpu_relax();
    }
    kprintf("HA: MISMATCH %s: free counter %lu pages, llfree trees %lu pages, llf_check zone %u -> %lu\n", when,
            counter, trees, bad_zone, bad);
    return -1;
}
