/* The balloon-follow driver's state, shared by the driver (virtio_balloon_follow.c)
 * and the phase workload that runs inside it (balloon_phases.c).
 *
 * The guest owns a region of RAM from FOLLOW_BASE up. The balloon holds the bottom
 * `actual` pages of it, the workload's working set the top `ws_pages`; the balloon
 * never takes pages of the working set (like a Linux driver that cannot allocate
 * them), so `actual + ws_pages <= max_pages` always holds. */
#ifndef TEST_GUEST_BALLOON_FOLLOW_H
#define TEST_GUEST_BALLOON_FOLLOW_H

#include "virtio.h"

#define FOLLOW_PAGE 4096ul
#define FOLLOW_BASE 0x800000ul             /* 8 MiB: above the DMA area [2, 6) MiB */

struct follow {
    struct virtio_dev d;
    struct virtq inflate, deflate, statsq;
    uint32_t *pfns;
    uint8_t *stats_buf;     /* the statistics buffer (virtio_balloon_stat entries) */
    int stats;              /* VIRTIO_BALLOON_F_STATS_VQ negotiated */
    uint32_t max_pages;     /* pages of the region */
    uint32_t actual;        /* pages in the balloon, from the bottom */
    uint32_t ws_pages;      /* pages the workload uses, from the top */
    uint32_t clamped_for;   /* target last reported as clamped */
    uint64_t stalls;        /* allocations that had to wait for the balloon */
    uint64_t next_poll;     /* TSC of the next service */
    int first;
};

/* Follows the target and answers the statistics queue when due (every ~50 ms);
 * with `now` set, at once. 0 ok, -1 FAIL printed. */
int follow_service(struct follow *f, int now);
/* Pages the workload may use without waiting for the balloon. */
static inline uint32_t follow_free_pages(const struct follow *f) { return f->max_pages - f->actual - f->ws_pages; }

/* The phase workload (balloon_phases.c): `testguest.phases=MiB:s,...`; 0 ok, -1 failed. */
int run_balloon_phases(struct follow *f, const char *spec, size_t len);

#endif
