/* balloon-follow mode: a balloon driver that keeps following the host's target
 * (virtio 1.2 §5.5.6), so the API's vm.resize-balloon can be tested end to end.
 *
 * Every ~50 ms (TSC) it reads num_pages (config offset 0), inflates or deflates until
 * its balloon holds exactly that many pages (clamped to the region it owns), writes
 * `actual` (config offset 4) and prints "TESTGUEST: balloon now <n> pages" whenever
 * that changes. The config-change interrupt (InterruptStatus bit 1) is acked and
 * reported. Ends after `testguest.follow_s=N` seconds (default 60). */
#include "virtio.h"

#define PAGE 4096ul
#define FOLLOW_BASE 0x800000ul             /* 8 MiB: above the DMA area [2, 6) MiB */
#define FOLLOW_POLL_MS 50
#define ISR_USED 1u
#define ISR_CONFIG 2u

/* Pages of the region [FOLLOW_BASE, ...) that the balloon may take: the RAM range
 * holding FOLLOW_BASE, inside the identity map. */
static uint32_t follow_max_pages(void)
{
    uint64_t lo = 0, hi = 1ul << 32;           /* binary search on ram_range_ok */
    if (!ram_range_ok(FOLLOW_BASE, PAGE))
        return 0;
    while (lo + 1 < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (ram_range_ok(FOLLOW_BASE, mid * PAGE))
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

/* Brings the balloon from *actual to target pages; 0 ok, -1 FAIL printed. */
static int follow_adjust(struct virtio_dev *d, struct virtq *inflate, struct virtq *deflate, uint32_t *pfns,
                         uint32_t *actual, uint32_t target)
{
    if (target > *actual) {
        if (balloon_send_pfns(d, inflate, pfns, (uint32_t)(FOLLOW_BASE / PAGE) + *actual, target - *actual, "follow inflate") < 0)
            return -1;
    } else if (balloon_send_pfns(d, deflate, pfns, (uint32_t)(FOLLOW_BASE / PAGE) + target, *actual - target, "follow deflate") < 0) {
        return -1;
    }
    *actual = target;
    vreg_write(d, VMMIO_CONFIG + 4, target);
    kprintf("TESTGUEST: balloon now %u pages\n", target);
    return 0;
}

void run_virtio_balloon_follow(void)
{
    struct virtio_dev d;
    struct virtq inflate, deflate;
    if (virtio_find(VIRTIO_ID_BALLOON, 0, &d) < 0 || virtio_init(&d, 0) < 0 ||
        virtq_setup(&d, &inflate, 0, 64) < 0 || virtq_setup(&d, &deflate, 1, 64) < 0)
        return;
    uint32_t *pfns = dma_alloc(4ul * BALLOON_PFNS_PER_DESC * BALLOON_CHAINS_PER_KICK);
    if (!pfns || virtio_driver_ok(&d) < 0)
        return;
    uint64_t follow_s = cmdline_u64("follow_s", 60);
    uint32_t max_pages = follow_max_pages();
    kprintf("TESTGUEST: balloon-follow for %lu s, up to %u pages at 0x%lx\n", follow_s, max_pages, FOLLOW_BASE);

    uint64_t poll_cycles = FOLLOW_POLL_MS * (tsc_hz() / 1000);
    uint64_t end = rdtsc() + follow_s * tsc_hz();
    uint32_t actual = 0, clamped_for = 0xffffffffu;
    int first = 1;
    for (;;) {
        if (follow_ack_config_change(&d))
            kprintf("TESTGUEST: balloon config change, num_pages %u\n", virtio_config_read32(&d, 0));
        uint32_t target = virtio_config_read32(&d, 0);
        uint32_t want = target;
        if (want > max_pages) {
            want = max_pages;
            if (clamped_for != target)
                kprintf("TESTGUEST: balloon target %u pages exceeds the %u pages owned; holding %u\n", target,
                        max_pages, want);
            clamped_for = target;
        }
        if ((want != actual || first) && follow_adjust(&d, &inflate, &deflate, pfns, &actual, want) < 0)
            return;
        first = 0;
        uint64_t now = rdtsc();
        if (now >= end)
            break;
        uint64_t next = now + poll_cycles < end ? now + poll_cycles : end;
        while (rdtsc() < next)
            cpu_relax();
    }
}
