/* A minimal polled virtio-mmio (version 2) driver for the test guest's virtio modes
 * (see docs/test-guest.md). Everything runs at CPL3: the MMIO slots sit in the
 * identity-mapped, user-accessible 3-4 GiB hole, rings and buffers in RAM the guest
 * owns above its image. No interrupts are taken (IF stays 0): completions are found by
 * polling the used ring, and the transport's InterruptStatus is checked and acked. */
#ifndef TEST_GUEST_VIRTIO_H
#define TEST_GUEST_VIRTIO_H

#include "guest.h"

#define VIRTIO_MMIO_BASE 0xc0000000ul
#define VIRTIO_MMIO_SLOT 0x1000ul
#define VIRTIO_MMIO_MAX_SLOTS 32
#define VIRTIO_MAGIC 0x74726976u

/* Register offsets (virtio 1.2 §4.2.2). */
enum {
    VMMIO_MAGIC = 0x000, VMMIO_VERSION = 0x004, VMMIO_DEVICE_ID = 0x008,
    VMMIO_DEVICE_FEATURES = 0x010, VMMIO_DEVICE_FEATURES_SEL = 0x014,
    VMMIO_DRIVER_FEATURES = 0x020, VMMIO_DRIVER_FEATURES_SEL = 0x024,
    VMMIO_QUEUE_SEL = 0x030, VMMIO_QUEUE_NUM_MAX = 0x034, VMMIO_QUEUE_NUM = 0x038,
    VMMIO_QUEUE_READY = 0x044, VMMIO_QUEUE_NOTIFY = 0x050,
    VMMIO_INTERRUPT_STATUS = 0x060, VMMIO_INTERRUPT_ACK = 0x064, VMMIO_STATUS = 0x070,
    VMMIO_QUEUE_DESC = 0x080, VMMIO_QUEUE_DRIVER = 0x090, VMMIO_QUEUE_DEVICE = 0x0a0,
    VMMIO_CONFIG_GENERATION = 0x0fc, VMMIO_CONFIG = 0x100,
};

enum {
    VSTATUS_ACKNOWLEDGE = 1, VSTATUS_DRIVER = 2, VSTATUS_DRIVER_OK = 4,
    VSTATUS_FEATURES_OK = 8, VSTATUS_NEEDS_RESET = 64, VSTATUS_FAILED = 128,
};

enum { VIRTIO_ID_NET = 1, VIRTIO_ID_BLOCK = 2, VIRTIO_ID_CONSOLE = 3, VIRTIO_ID_RNG = 4,
       VIRTIO_ID_BALLOON = 5 };

#define VIRTIO_F_VERSION_1 (1ul << 32)

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_MAX_SIZE 256

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[];
};
struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};
struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[];
};

struct virtq {
    uint16_t index;         /* queue number on the device */
    uint16_t size;          /* QueueNum we chose */
    uint16_t next_desc;     /* where the next chain starts (descriptors used in turn) */
    uint16_t avail_idx;     /* our copy of avail->idx */
    uint16_t last_used;     /* used entries consumed so far */
    volatile struct virtq_desc *desc;
    volatile struct virtq_avail *avail;
    volatile struct virtq_used *used;
};

struct virtio_dev {
    uint64_t base;          /* MMIO slot address */
    unsigned slot;
    uint32_t device_id;
    uint64_t features;      /* negotiated */
};

/* One buffer of a chain: the device writes it when `device_writes`. */
struct vbuf {
    uint64_t addr;
    uint32_t len;
    int device_writes;
};

/* ---- timing and command line (virtio.c) ---- */
uint64_t tsc_hz(void);                              /* CPUID-derived, else 2.5 GHz */
void spin_seconds(unsigned s);
/* Value of `testguest.<key>=` from the kernel command line, length in *len; 0 if absent. */
const char *cmdline_option(const char *key, size_t *len);
uint64_t cmdline_u64(const char *key, uint64_t dflt);
/* Parses `testguest.<key>=a.b.c.d` into network byte order bytes; 0 ok, -1 absent/bad. */
int cmdline_ipv4(const char *key, uint8_t ip[4]);

/* ---- DMA memory: a bump allocator over RAM at [2 MiB, 6 MiB) (virtio.c) ---- */
#define VIRTIO_DMA_BASE 0x200000ul
#define VIRTIO_DMA_SIZE 0x400000ul
void *dma_alloc(uint64_t bytes);                  /* page-aligned, zeroed; 0 if exhausted */
int ram_range_ok(uint64_t start, uint64_t len);   /* inside e820 RAM and the identity map */

/* ---- transport ---- */
static inline uint32_t vreg_read(const struct virtio_dev *d, uint32_t off) { return mmio_read32(d->base + off); }
static inline void vreg_write(const struct virtio_dev *d, uint32_t off, uint32_t v) { mmio_write32(d->base + off, v); }

/* Finds the nth (0-based) device with `device_id`; 0 ok, -1 (FAIL printed) if none. */
int virtio_find(uint32_t device_id, unsigned nth, struct virtio_dev *out);
/* Reset, ACKNOWLEDGE, DRIVER, feature negotiation (VERSION_1 | (wanted & offered)),
 * FEATURES_OK and its read-back. 0 ok, -1 FAIL printed. */
int virtio_init(struct virtio_dev *d, uint64_t wanted);
/* Sets up queue `index` with at most `max_size` entries (rings from dma_alloc). */
int virtq_setup(struct virtio_dev *d, struct virtq *q, uint16_t index, uint16_t max_size);
int virtio_driver_ok(struct virtio_dev *d);       /* 0 ok, -1 FAIL printed (NEEDS_RESET/FAILED) */
uint32_t virtio_config_read32(const struct virtio_dev *d, uint32_t off);
uint64_t virtio_config_read64(const struct virtio_dev *d, uint32_t off);   /* generation-checked */

/* Adds one chain (n buffers) to the avail ring, does not notify; returns its head. */
int virtq_add(struct virtq *q, const struct vbuf *b, unsigned n);
/* Re-posts an existing single-descriptor chain (rx buffers). */
void virtq_repost(struct virtq *q, uint16_t head);
void virtq_kick(const struct virtio_dev *d, const struct virtq *q);
/* Waits (bounded by timeout_ms) for the next used entry. 1 got one, 0 timed out. */
int virtq_poll(struct virtq *q, uint64_t timeout_ms, uint32_t *id, uint32_t *len);
/* Checks that InterruptStatus bit 0 is set (waiting briefly: the device sets it right
 * after publishing the used entry) and acks it. 0 ok, -1 FAIL printed. */
int virtio_check_ack_irq(const struct virtio_dev *d, const char *what);
/* Adds a chain, notifies, waits for its completion and checks+acks the interrupt. */
int virtq_transfer(struct virtio_dev *d, struct virtq *q, const struct vbuf *b, unsigned n,
                   uint32_t *used_len, const char *what);

/* ---- modes (virtio_blk.c, virtio_modes.c, virtio_net.c, virtio_balloon_follow.c) ---- */
/* Balloon PFN transfer shared by the balloon modes (virtio_modes.c): pages
 * first_pfn.. through q, BALLOON_PFNS_PER_DESC per buffer, BALLOON_CHAINS_PER_KICK
 * buffers per notification; `pfns` holds PFNS_PER_DESC * CHAINS_PER_KICK words. */
#define BALLOON_PFNS_PER_DESC 256u  /* the device's limit per descriptor */
#define BALLOON_CHAINS_PER_KICK 16u
int balloon_send_pfns(struct virtio_dev *d, struct virtq *q, uint32_t *pfns, uint32_t first_pfn, uint32_t pages,
                      const char *what);

void run_virtio_blk(int verify_only, int expect_readonly);
void run_virtio_rng(void);
void run_virtio_console(void);
void run_virtio_net(void);
void run_virtio_balloon(void);
void run_virtio_balloon_follow(void);   /* virtio_balloon_follow.c: mode balloon-follow */

#endif
