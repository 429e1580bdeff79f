/* balloon-follow mode: a balloon driver that keeps following the host's target
 * (virtio 1.2 §5.5.6), so the API's vm.resize-balloon and the automatic balloon
 * controller can be tested end to end.
 *
 * Every ~50 ms (TSC) it reads num_pages (config offset 0), inflates or deflates until
 * its balloon holds exactly that many pages (clamped to the part of its region the
 * workload does not use), writes `actual` (config offset 4) and prints
 * "TESTGUEST: balloon now <n> pages" whenever that changes. The config-change
 * interrupt (InterruptStatus bit 1) is acked and reported.
 *
 * When the device offers VIRTIO_BALLOON_F_STATS_VQ the driver negotiates it and
 * answers every statistics request with what the region holds: total, free and
 * available memory, major faults (always 0: nothing is paged) and allocation stalls
 * (the workload's waits for the balloon). With `testguest.phases=...` the phase
 * workload runs (balloon_phases.c); otherwise the driver only follows, for
 * `testguest.follow_s=N` seconds (default 60). */
#include "balloon_follow.h"

#define FOLLOW_POLL_MS 50
#define ISR_CONFIG 2u
#define BALLOON_F_STATS_VQ (1ul << 1)
#define STAT_ENTRY 10u                      /* le16 tag, le64 value, packed */
enum { STAT_MAJFLT = 2, STAT_MEMFREE = 4, STAT_MEMTOT = 5, STAT_AVAIL = 6, STAT_ALLOC_STALL = 11 };
#define STAT_COUNT 5u

/* Pages of the region [FOLLOW_BASE, ...) that the balloon may take: the RAM range
 * holding FOLLOW_BASE, inside the identity map. */
static uint32_t follow_max_pages(void)
{
    uint64_t lo = 0, hi = 1ul << 32;           /* binary search on ram_range_ok */
    if (!ram_range_ok(FOLLOW_BASE, FOLLOW_PAGE))
        return 0;
    while (lo + 1 < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ram_range_ok(FOLLOW_BASE, mid * FOLLOW_PAGE))
            lo = mid;
        else
            hi = mid;
    }
    return (uint32_t)lo;
}

/* Acks a pending config-change interrupt; 1 if there was one. */
static int follow_ack_config_change(const struct virtio_dev *d)
{
    uint32_t isr = vreg_read(d, VMMIO_INTERRUPT_STATUS);
    if (!(isr & ISR_CONFIG))
        return 0;
    vreg_write(d, VMMIO_INTERRUPT_ACK, ISR_CONFIG);
    return 1;
}

/* Brings the balloon from f->actual to target pages; 0 ok, -1 FAIL printed. */
static int follow_adjust(struct follow *f, uint32_t target)
{
    uint32_t base_pfn = (uint32_t)(FOLLOW_BASE / FOLLOW_PAGE);
    if (target > f->actual) {
        if (balloon_send_pfns(&f->d, &f->inflate, f->pfns, base_pfn + f->actual, target - f->actual,
                              "follow inflate") < 0)
            return -1;
    } else if (balloon_send_pfns(&f->d, &f->deflate, f->pfns, base_pfn + target, f->actual - target,
                                 "follow deflate") < 0) {
        return -1;
    }
    f->actual = target;
    vreg_write(&f->d, VMMIO_CONFIG + 4, target);
    kprintf("TESTGUEST: balloon now %u pages\n", target);
    return 0;
}

static void stat_put(uint8_t *p, uint16_t tag, uint64_t value)
{
    p[0] = (uint8_t)tag;
    p[1] = (uint8_t)(tag >> 8);
    for (int i = 0; i < 8; i++)
        p[2 + i] = (uint8_t)(value >> (8 * i));
}

/* Fills the statistics buffer and hands it to the device. */
static void follow_post_stats(struct follow *f)
{
    uint64_t total = (uint64_t)f->max_pages * FOLLOW_PAGE;
    uint64_t free = (uint64_t)follow_free_pages(f) * FOLLOW_PAGE;
    uint8_t *p = f->stats_buf;
    stat_put(p + 0 * STAT_ENTRY, STAT_MAJFLT, 0);
    stat_put(p + 1 * STAT_ENTRY, STAT_MEMFREE, free);
    stat_put(p + 2 * STAT_ENTRY, STAT_MEMTOT, total);
    stat_put(p + 3 * STAT_ENTRY, STAT_AVAIL, free);
    stat_put(p + 4 * STAT_ENTRY, STAT_ALLOC_STALL, f->stalls);
    struct vbuf b = { (uint64_t)f->stats_buf, STAT_COUNT * STAT_ENTRY, 0 };
    virtq_add(&f->statsq, &b, 1);
    virtq_kick(&f->d, &f->statsq);
}

int follow_service(struct follow *f, int now)
{
    if (!now && rdtsc() < f->next_poll)
        return 0;
    f->next_poll = rdtsc() + FOLLOW_POLL_MS * (tsc_hz() / 1000);
    if (follow_ack_config_change(&f->d))
        kprintf("TESTGUEST: balloon config change, num_pages %u\n", virtio_config_read32(&f->d, 0));
    uint32_t target = virtio_config_read32(&f->d, 0);
    uint32_t room = f->max_pages - f->ws_pages;
    uint32_t want = target;
    if (want > room) {
        want = room;
        if (f->clamped_for != target)
            kprintf("TESTGUEST: balloon target %u pages exceeds the %u pages free to give; holding %u\n", target,
                    room, want);
        f->clamped_for = target;
    }
    if ((want != f->actual || f->first) && follow_adjust(f, want) < 0)
        return -1;
    f->first = 0;
    uint32_t id, len;
    /* The device returned the buffer: it wants fresh statistics. */
    if (f->stats && virtq_poll(&f->statsq, 0, &id, &len))
        follow_post_stats(f);
    return 0;
}

void run_virtio_balloon_follow(void)
{
    static struct follow f;
    if (virtio_find(VIRTIO_ID_BALLOON, 0, &f.d) < 0 || virtio_init(&f.d, BALLOON_F_STATS_VQ) < 0 ||
        virtq_setup(&f.d, &f.inflate, 0, 64) < 0 || virtq_setup(&f.d, &f.deflate, 1, 64) < 0)
        return;
    f.stats = (f.d.features & BALLOON_F_STATS_VQ) != 0;
    if (f.stats && virtq_setup(&f.d, &f.statsq, 2, 4) < 0)
        return;
    f.pfns = dma_alloc(4ul * BALLOON_PFNS_PER_DESC * BALLOON_CHAINS_PER_KICK);
    f.stats_buf = dma_alloc(STAT_COUNT * STAT_ENTRY);
    if (!f.pfns || !f.stats_buf || virtio_driver_ok(&f.d) < 0)
        return;
    f.max_pages = follow_max_pages();
    f.clamped_for = 0xffffffffu;
    f.first = 1;
    if (f.stats)
        follow_post_stats(&f);            /* the first buffer: the device keeps it until it polls */
    size_t spec_len = 0;
    const char *spec = cmdline_option("phases", &spec_len);
    uint64_t follow_s = cmdline_u64("follow_s", 60);
    if (spec)
        kprintf("TESTGUEST: balloon-follow with phases, up to %u pages at 0x%lx, statistics %s\n", f.max_pages,
                FOLLOW_BASE, f.stats ? "on" : "off");
    else
        kprintf("TESTGUEST: balloon-follow for %lu s, up to %u pages at 0x%lx, statistics %s\n", follow_s,
                f.max_pages, FOLLOW_BASE, f.stats ? "on" : "off");
    if (follow_service(&f, 1) < 0)
        return;
    if (spec) {
        run_balloon_phases(&f, spec, spec_len);
        return;
    }
    uint64_t end = rdtsc() + follow_s * tsc_hz();
    while (rdtsc() < end) {
        if (follow_service(&f, 0) < 0)
            return;
        cpu_relax();
    }
}
