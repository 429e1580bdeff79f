/* The virtio-hostile mode (docs/hardening.md): a guest that
 * breaks the virtio rules on purpose against virtio-blk, virtio-rng and the
 * virtio-balloon, and after every attack checks that the attacked device answers as
 * expected (a used buffer or DEVICE_NEEDS_RESET, never silence), that it works again
 * after a reset, and that the other devices still work.
 *
 * virtio_hostile_dev.c holds the device handles (queues in memory allocated once, so
 * a device can be reset and re-initialised any number of times), the outcome probe
 * and the "good" checks; virtio_hostile.c the ring and set-up attacks and the mode
 * itself; virtio_hostile_req.c the request-level attacks and register abuse. */
#ifndef TEST_GUEST_VIRTIO_HOSTILE_H
#define TEST_GUEST_VIRTIO_HOSTILE_H

#include "virtio.h"

#define HOSTILE_F_INDIRECT_DESC (1ul << 28)
#define HOSTILE_DESC_F_INDIRECT 4
#define HQ_SIZE 16u                 /* every queue: a chain through all of it stays cheap */
#define HPAGE 4096ul
#define FAR_AWAY (1ull << 44)       /* beyond any guest RAM */
#define HOLE_ADDR 0xd0000000ull     /* the 3-4 GiB MMIO hole (not a device) */
#define BIG_BUF (16ul << 20)        /* 16 MiB of RAM at 16 MiB that nothing else uses */
/* The balloon area's first 64 pages are the good checks'; the attacks use 8 after them. */
#define BALLOON_AREA_PAGES 72u
#define ATTACK_PAGE(i) (hb.balloon_area + (64 + (i)) * HPAGE)

/* A device under attack. */
struct hdev {
    const char *name;
    struct virtio_dev dev;
    uint64_t wanted;                /* features asked for (what is offered of them) */
    unsigned nq;                    /* queues set up: balloon 2 (inflate, deflate) */
    struct virtq q[2];
    uint8_t *rings[2];              /* 3 pages per queue: desc, avail, used */
};

enum { HD_BLK, HD_RNG, HD_BALLOON, HD_COUNT };
extern struct hdev hdevs[HD_COUNT];

/* What the driver saw after an attack (a bit each, so expectations can be masks). */
enum { OUT_NONE = 1, OUT_USED = 2, OUT_RESET = 4 };

struct hblk_hdr {
    uint32_t type, reserved;
    uint64_t sector;
};

/* Scratch memory the attacks and checks share (all in the DMA area). */
struct hbufs {
    struct hblk_hdr *blk_hdr;
    uint8_t *blk_status, *blk_data;            /* 1 B status, 4 KiB data */
    uint8_t *rng;                              /* 4 KiB */
    uint32_t *pfns;                            /* 2 pages: up to 2048 PFNs */
    uint8_t *table;                            /* 5 pages: indirect tables (1025 entries) */
    uint64_t balloon_area;                     /* 64 pages the balloon checks inflate */
    uint64_t ram_top;                          /* end of the highest e820 RAM range */
    uint64_t blk_capacity;                     /* sectors */
};
extern struct hbufs hb;

/* ---- virtio_hostile_dev.c ---- */
int hostile_setup(void);                       /* finds and opens the three devices */
int hdev_reinit(struct hdev *h);               /* reset, features, queues, DRIVER_OK */
/* Like hdev_reinit, but queue 0 gets the given size and ring addresses; returns the
 * status read back after DRIVER_OK (~0 if the set-up before failed). */
uint32_t hdev_setup_raw(struct hdev *h, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used);
/* A fresh queue's descriptors from index 0 are the attacker's; this publishes `head`
 * in the avail ring and notifies. */
void hq_post(struct hdev *h, struct virtq *q, uint16_t head);
/* Every attack must be answered; the answer comes from the VMM's event-loop thread
 * (ioeventfd), which a loaded 2-core host may not run for a while: 5 s like virtq_transfer. */
#define HQ_TIMEOUT_MS 5000
/* Waits up to `ms` for a used buffer (consumed, its len in *len, interrupt acked) or
 * DEVICE_NEEDS_RESET; OUT_* */
int hq_outcome(struct hdev *h, struct virtq *q, uint64_t ms, uint32_t *len);
const char *outcome_name(int out);
/* Good requests: 0 ok, -1 with *why set. */
int good_blk(unsigned salt, const char **why);
int good_rng(const char **why);
int good_balloon(unsigned salt, const char **why);
int hdev_good(unsigned which, unsigned salt, const char **why);   /* one of the three */
/* Prints one PASS or FAIL line; returns ok. */
int hcheck(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Re-initialises `which` and runs its good check, and the good checks of every other
 * device (which keep running: no reset), each one a check line. */
void after_attack(unsigned which, const char *what);
extern unsigned h_checks, h_failed, h_attacks;

/* ---- virtio_hostile_req.c ---- */
void blk_requests(void);
void rng_requests(void);
void balloon_requests(void);
/* Register abuse and a notify storm of `notifies` on a running device. */
void register_abuse(unsigned which, unsigned notifies);

/* ---- virtio_hostile.c ---- */
void run_virtio_hostile(void);

#endif
