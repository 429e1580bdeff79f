/* The HyperAlloc balloon's guest<->host protocol over virtio-mmio (docs/hyperalloc.md).
 * Plain C11, shared by the VMM, the freestanding test guest and the guest kernel
 * driver. It follows the protocol of the HyperAlloc artefact (EuroSys 2025) except
 * for the device ID: HyperAlloc there impersonated virtio-balloon (ID 5); we use our
 * own ID so that the stock virtio-balloon driver never binds to this device.
 *
 * Queues:
 *   0 info:    the driver posts one or more ha_zone_record (a buffer may hold several;
 *              its length must be a multiple of the record size). The device validates
 *              each record on its own, takes the good ones and logs the bad ones.
 *   1 notify:  a 4-byte le32 value; HA_NOTIFY_PAGECACHE_DROPPED after the guest
 *              dropped page cache because the host asked (config shrink_pagecache).
 *   2..2+N-1:  install queues, one per vCPU, size 1. One ha_install_request
 *              (driver-readable), optionally followed by a 4-byte device-writable
 *              le32 status (HA_INSTALL_*). The guest spins until the buffer is used.
 * Config space: le32 shrink_pagecache (pages the host asks the guest to drop from its
 * page cache; the guest writes back what it could not drop), at offset 0.
 */
#ifndef BALLOON_HYPERALLOC_ABI_H
#define BALLOON_HYPERALLOC_ABI_H

#ifdef __KERNEL__
#include <linux/types.h>  /* the guest kernel's virtio_hyperalloc driver */
#else
#include <stdint.h>
#endif

/* "HA": outside the range the virtio specification assigns. */
#define HA_VIRTIO_DEVICE_ID 0x4841u

/* Feature bits (bit numbers as in the artefact). */
#define HA_F_SHRINK_PAGECACHE_BIT 1u
#define HA_F_AUTO_MODE_BIT 4u

#define HA_QUEUE_INFO 0u
#define HA_QUEUE_NOTIFY 1u
#define HA_QUEUE_INSTALL_FIRST 2u
#define HA_INFO_QUEUE_SIZE 8u
#define HA_NOTIFY_QUEUE_SIZE 8u
#define HA_INSTALL_QUEUE_SIZE 1u

#define HA_NOTIFY_PAGECACHE_DROPPED 0u

enum ha_zone_type { HA_ZONE_DMA32 = 0, HA_ZONE_NORMAL = 1, HA_ZONE_MOVABLE = 2 };

/* One LLFree instance per zone. All addresses are guest-physical. The instance's
 * base pfn is llf_base_pfn(start_pfn); it manages (start_pfn + pages - base) frames;
 * trees/lower hold llf_trees_bytes / llf_lower_bytes of that count. */
struct ha_zone_record {
    uint64_t local_gpa;         /* the guest's per-CPU state (not read by the host) */
    uint64_t trees_gpa;         /* 64-byte aligned */
    uint64_t lower_gpa;         /* 64-byte aligned */
    uint32_t start_pfn;
    uint32_t pages;             /* spanned pages from start_pfn */
    uint32_t zone_type;         /* enum ha_zone_type */
    uint32_t node;              /* 0: UMA only */
    uint64_t free_pages_gpa;    /* the zone's free-page counter (s64), 8-byte aligned */
    uint64_t file_pages_gpa;    /* the node's page-cache counter (s64); 0 if none */
};

struct ha_install_request {
    uint32_t node;
    uint32_t zone_type;
    uint64_t frame;             /* relative to the instance base; aligned down to 2 MiB */
};

#define HA_INSTALL_OK 0u              /* the frame is backed (installed now or before) */
#define HA_INSTALL_ERR_ZONE 1u        /* no such zone */
#define HA_INSTALL_ERR_RANGE 2u       /* frame outside the zone */
#define HA_INSTALL_ERR_HARD 3u        /* the host holds the frame (hard-reclaimed) */
#define HA_INSTALL_ERR_BACKING 4u     /* populating (or DMA-mapping) failed */

#ifdef __cplusplus
static_assert(sizeof(struct ha_zone_record) == 56, "published record size");
static_assert(sizeof(struct ha_install_request) == 16, "published request size");
#else
_Static_assert(sizeof(struct ha_zone_record) == 56, "published record size");
_Static_assert(sizeof(struct ha_install_request) == 16, "published request size");
#endif

#endif
