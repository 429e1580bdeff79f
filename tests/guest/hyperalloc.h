/* The HyperAlloc guest side of the test guest (docs/test-guest.md, "HyperAlloc
 * modes"): the guest's RAM is managed by LLFree (balloon/src/llfree/llfree.c, the
 * same freestanding core a guest kernel would use), whose state is shared with the
 * host through the HyperAlloc device (balloon/include/balloon/hyperalloc/
 * hyperalloc_abi.h). The host reclaims and returns 2 MiB frames by itself; the guest
 * only has to ask for an install before it touches a frame the host reclaimed.
 *
 * Everything runs at CPL3 like the other virtio modes; every line a test asserts on
 * starts with "HA:" and every problem with "FAIL" (or contains "MISMATCH"). */
#ifndef TEST_GUEST_HYPERALLOC_H
#define TEST_GUEST_HYPERALLOC_H

#include "balloon/hyperalloc/hyperalloc_abi.h"
#include "balloon/llfree/llfree.h"
#include "virtio.h"

#define HA_MAX_ZONES 2
#define HA_MAX_INSTALL_QUEUES 64         /* LLF_MAX_CPUS: the device's vCPU limit */
#define HA_META_BASE 0x600000ul          /* LLFree metadata: right after the DMA area */
#define HA_MIB (1ul << 20)
#define HA_PAGE 4096ul
#define VIRTIO_F_INDIRECT_DESC (1ul << 28)
#define VIRTQ_DESC_F_INDIRECT 4

struct ha_zone {
    struct llfree llf;
    uint32_t type;                       /* enum ha_zone_type */
    uint64_t start_pfn, pages;           /* as reported to the host */
    int64_t *free_pages;                 /* shared NR_FREE_PAGES: guest +-, host -512/+512 */
    struct ha_zone_record rec;           /* the record posted on the info queue */
};

/* One install queue: size 1, one request in flight, spun on. */
struct ha_install_queue {
    struct virtq q;
    struct ha_install_request *req;
    volatile uint32_t *status;           /* device-writable (via an indirect table) */
    volatile struct virtq_desc *table;   /* the 2-entry indirect table */
};

/* Per-CPU counters (each CPU writes only its own; the BSP sums them). */
struct ha_cpu_stats {
    uint64_t allocs, frees, installs, install_errors, enomem, mismatches, verified_blocks;
    uint64_t held_frames;                /* the workload's working set */
};

struct ha_state {
    struct virtio_dev dev;
    struct virtq info, notify;
    struct ha_install_queue iq[HA_MAX_INSTALL_QUEUES];
    unsigned install_queues;
    int has_status;                      /* INDIRECT_DESC negotiated: installs report a status */
    struct ha_zone zones[HA_MAX_ZONES];
    unsigned nzones;
    int64_t *file_pages;                 /* the "page cache" counter (the cache pool) */
    uint64_t reserved_end;               /* first byte handed to LLFree */
    uint64_t ram_bytes;                  /* e820 RAM, total */
    uint32_t *notify_buf;
    struct ha_cpu_stats cpu[MAX_CPUS];
    /* The cache pool standing in for page cache (testguest.ha_cache=MiB). */
    uint64_t *cache_pfns;                /* absolute pfns of order-0 pages */
    uint64_t cache_count, cache_capacity;
    uint64_t cache_dropped, cache_requests;
};
extern struct ha_state ha;

/* ---- hyperalloc_setup.c ---- */
/* Zones from e820, metadata at HA_META_BASE, llf_init + llf_init_free. 0 ok, -1 FAIL printed. */
int ha_setup_zones(void);
/* Absolute pfn <-> zone (0 if none). */
struct ha_zone *ha_zone_of(uint64_t pfn);
uint64_t ha_free_counter_pages(void);            /* sum of the shared counters */
uint64_t ha_llfree_free_pages(void);             /* sum of the tree counters */
/* Checks that the shared counters and llf_check agree (retrying while the host may be
 * mid-operation); prints a MISMATCH line and returns -1 if they never do. */
int ha_check_consistency(const char *when);

/* ---- hyperalloc_driver.c ---- */
/* Finds and initialises the device, sets up every queue, DRIVER_OK. 0 ok, -1 FAIL printed. */
int ha_device_init(void);
/* Posts `len` bytes at `buf` on the info queue and waits for the device. 0 ok, -1 FAIL. */
int ha_post_info(const void *buf, uint32_t len);
int ha_post_zones(void);                          /* all zone records in one buffer */
/* One install request on queue `queue`; returns the device's status (HA_INSTALL_*, or
 * HA_INSTALL_OK when the device gives none), -1 on timeout (FAIL printed). */
int ha_install_raw(unsigned queue, uint32_t node, uint32_t zone_type, uint64_t frame);
/* Allocation wrapper: llf_get on `z`, the shared counter, and an install of every child
 * the host had reclaimed, before anyone touches the memory. Absolute pfn in *pfn. */
int ha_alloc(struct ha_zone *z, unsigned cpu, unsigned order, uint64_t *pfn);
/* Allocates from any zone (random start), so both zones get used. */
int ha_alloc_any(unsigned cpu, unsigned order, uint64_t seed, uint64_t *pfn);
int ha_free(unsigned cpu, uint64_t pfn, unsigned order);   /* llf_put + counter; -1 FAIL printed */
/* Polls InterruptStatus: acks used-buffer bits and answers a config change
 * (shrink_pagecache) from the cache pool. BSP only. */
void ha_poll_device(unsigned cpu);
/* Fills the cache pool with `mib` MiB of order-0 pages. 0 ok, -1 FAIL printed. */
int ha_cache_fill(unsigned cpu, uint64_t mib);

/* ---- hyperalloc_workload.c ---- */
uint64_t ha_rand(uint64_t *state);
uint64_t ha_pattern(uint64_t addr, uint64_t gen);
/* Allocates all free memory, writes every page once and frees it again (so the host's
 * RSS includes it). Prints "HA: touched ...". 0 ok, -1 FAIL printed. */
int ha_touch_all(unsigned cpu);
/* Writes / verifies a block's pattern; verify returns the number of bad qwords (and
 * prints the first as a MISMATCH line). */
void ha_fill(uint64_t pfn, unsigned order, uint64_t gen);
uint64_t ha_verify(uint64_t pfn, unsigned order, uint64_t gen, const char *what);
/* Random-order working set of at most hold_mib MiB for `seconds` (0: forever),
 * printing a status line every ~1 s when `report` (mismatches are counted in
 * ha.cpu[cpu]). Everything is freed at the end. 0, or -1 after a FAIL line. */
int ha_workload(unsigned cpu, uint64_t hold_mib, uint64_t seconds, int report);
void ha_print_status(uint64_t t_s, uint64_t held_frames);

/* ---- hyperalloc_modes.c / hyperalloc_hostile.c ---- */
int run_hyperalloc_mode(const char *name);       /* 0 if `name` is not a hyperalloc mode */
void run_hyperalloc_hostile(void);

#endif
