/* virtio-blk modes (virtio 1.2 §5.2): write a seeded pattern at several offsets,
 * flush, read it back; the request past the end must fail with IOERR; GET_ID.
 * `virtio-blk-verify` only reads the pattern (a second VM run on the same file proves
 * the data reached it); `virtio-blk-ro` expects a write to a read-only disk to fail. */
#include "virtio.h"

#define BLK_F_RO (1ul << 5)
#define BLK_F_FLUSH (1ul << 9)
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define SECTOR 512u
#define XFER_SECTORS 64u
#define XFER_BYTES (XFER_SECTORS * SECTOR)
#define ID_BYTES 20
#define NUM_OFFSETS 4

struct blk_req_hdr {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

struct blk {
    struct virtio_dev dev;
    struct virtq q;
    struct blk_req_hdr *hdr;
    volatile uint8_t *status;
    uint8_t *data;
    uint64_t capacity;
};

static uint64_t pattern(uint64_t seed, uint64_t sector, unsigned word)
{
    uint64_t x = (seed + 1) * 0x9e3779b97f4a7c15ul ^ (sector << 8 | word);
    x ^= x >> 31, x *= 0xbf58476d1ce4e5b9ul, x ^= x >> 29;
    return x;
}

static void fill(uint64_t *buf, uint64_t seed, uint64_t first_sector)
{
    for (unsigned s = 0; s < XFER_SECTORS; s++)
        for (unsigned w = 0; w < SECTOR / 8; w++)
            buf[s * (SECTOR / 8) + w] = pattern(seed, first_sector + s, w);
}

/* One request: header, `data_len` bytes of data in `split` descriptors, status byte.
 * Returns the status byte the device wrote, or -1 (FAIL printed). */
static int blk_request(struct blk *b, uint32_t type, uint64_t sector, uint32_t data_len, unsigned split)
{
    struct vbuf bufs[6];
    unsigned n = 0;
    *b->hdr = (struct blk_req_hdr){ .type = type, .sector = sector };
    *b->status = 0xff;
    bufs[n++] = (struct vbuf){ (uint64_t)b->hdr, sizeof(*b->hdr), 0 };
    int dev_writes = type != BLK_T_OUT;
    for (unsigned i = 0; data_len && i < split; i++)
        bufs[n++] = (struct vbuf){ (uint64_t)b->data + i * (data_len / split), data_len / split, dev_writes };
    bufs[n++] = (struct vbuf){ (uint64_t)b->status, 1, 1 };
    uint32_t used_len;
    if (virtq_transfer(&b->dev, &b->q, bufs, n, &used_len, "blk request") < 0)
        return -1;
    /* Everything the device wrote: the data for IN/GET_ID, plus the status byte. */
    uint32_t want_min = 1;
    if (*b->status == BLK_S_OK && (type == BLK_T_IN))
        want_min = data_len + 1;
    if (used_len < want_min || used_len > data_len + 1) {
        kprintf("TESTGUEST: FAIL blk type %u sector %lu: used len %u (want %u..%u)\n", type, sector, used_len,
                want_min, data_len + 1);
        return -1;
    }
    return *b->status;
}

static int blk_open(struct blk *b)
{
    if (virtio_find(VIRTIO_ID_BLOCK, 0, &b->dev) < 0 || virtio_init(&b->dev, BLK_F_FLUSH | BLK_F_RO) < 0 ||
        virtq_setup(&b->dev, &b->q, 0, 64) < 0)
        return -1;
    b->hdr = dma_alloc(sizeof(*b->hdr));
    b->status = dma_alloc(1);
    b->data = dma_alloc(XFER_BYTES);
    if (!b->hdr || !b->status || !b->data || virtio_driver_ok(&b->dev) < 0)
        return -1;
    b->capacity = virtio_config_read64(&b->dev, 0);
    if (b->capacity < 4 * XFER_SECTORS) {
        kprintf("TESTGUEST: FAIL blk capacity %lu sectors (need >= %u)\n", b->capacity, 4 * XFER_SECTORS);
        return -1;
    }
    return 0;
}

/* Start sectors: the first, an unaligned one, the middle, the last 64 sectors. */
static void blk_offsets(const struct blk *b, uint64_t off[NUM_OFFSETS])
{
    off[0] = 0;
    off[1] = 1000 % (b->capacity - XFER_SECTORS);
    off[2] = b->capacity / 2 + 7;
    off[3] = b->capacity - XFER_SECTORS;
}

static int blk_read_verify(struct blk *b, uint64_t seed, uint64_t sector, unsigned split)
{
    memset(b->data, 0, XFER_BYTES);
    int st = blk_request(b, BLK_T_IN, sector, XFER_BYTES, split);
    if (st != BLK_S_OK) {
        if (st >= 0)
            kprintf("TESTGUEST: FAIL blk read sector %lu: status %d\n", sector, st);
        return -1;
    }
    const uint64_t *w = (const uint64_t *)b->data;
    for (unsigned s = 0; s < XFER_SECTORS; s++)
        for (unsigned i = 0; i < SECTOR / 8; i++)
            if (w[s * (SECTOR / 8) + i] != pattern(seed, sector + s, i)) {
                kprintf("TESTGUEST: FAIL blk data at sector %lu word %u: 0x%lx, expected 0x%lx (seed %lu)\n",
                        sector + s, i, w[s * (SECTOR / 8) + i], pattern(seed, sector + s, i), seed);
                return -1;
            }
    return 0;
}

static int blk_get_id(struct blk *b, char id[ID_BYTES + 1])
{
    memset(b->data, 0, ID_BYTES);
    int st = blk_request(b, BLK_T_GET_ID, 0, ID_BYTES, 1);
    if (st != BLK_S_OK) {
        if (st >= 0)
            kprintf("TESTGUEST: FAIL blk GET_ID: status %d\n", st);
        return -1;
    }
    memcpy(id, b->data, ID_BYTES);
    id[ID_BYTES] = 0;   /* the device pads with NULs, but 20 characters have none */
    return 0;
}

static int blk_write_all(struct blk *b, uint64_t seed, const uint64_t off[NUM_OFFSETS])
{
    for (unsigned i = 0; i < NUM_OFFSETS; i++) {
        fill((uint64_t *)b->data, seed, off[i]);
        /* Odd offsets: data in 4 descriptors, so chains with several data buffers count. */
        int st = blk_request(b, BLK_T_OUT, off[i], XFER_BYTES, i & 1 ? 4 : 1);
        if (st != BLK_S_OK) {
            if (st >= 0)
                kprintf("TESTGUEST: FAIL blk write sector %lu: status %d\n", off[i], st);
            return -1;
        }
    }
    if (b->dev.features & BLK_F_FLUSH) {
        int st = blk_request(b, BLK_T_FLUSH, 0, 0, 0);
        if (st != BLK_S_OK) {
            if (st >= 0)
                kprintf("TESTGUEST: FAIL blk flush: status %d\n", st);
            return -1;
        }
    }
    return 0;
}

static int blk_expect_status(struct blk *b, uint32_t type, uint64_t sector, uint32_t len, int want, const char *what)
{
    int st = blk_request(b, type, sector, len, 1);
    if (st < 0)
        return -1;
    if (st != want) {
        kprintf("TESTGUEST: FAIL blk %s (type %u sector %lu, %u bytes): status %d, want %d\n", what, type, sector,
                len, st, want);
        return -1;
    }
    return 0;
}

void run_virtio_blk(int verify_only, int expect_readonly)
{
    struct blk b;
    uint64_t off[NUM_OFFSETS];
    uint64_t seed = cmdline_u64("seed", 1);
    char id[ID_BYTES + 1];
    if (blk_open(&b) < 0)
        return;
    blk_offsets(&b, off);
    int ro = (b.dev.features & BLK_F_RO) != 0;
    if (expect_readonly) {
        if (!ro) {
            kprintf("TESTGUEST: FAIL blk ro: device does not offer VIRTIO_BLK_F_RO\n");
            return;
        }
        fill((uint64_t *)b.data, seed, off[0]);
        if (blk_expect_status(&b, BLK_T_OUT, off[0], XFER_BYTES, BLK_S_IOERR, "write to read-only disk") < 0 ||
            blk_expect_status(&b, BLK_T_IN, 0, XFER_BYTES, BLK_S_OK, "read of read-only disk") < 0)
            return;
        kprintf("TESTGUEST: blk ro ok capacity %lu sectors\n", b.capacity);
        return;
    }
    if (ro) {
        kprintf("TESTGUEST: FAIL blk: device is read-only (VIRTIO_BLK_F_RO)\n");
        return;
    }
    if (!verify_only && blk_write_all(&b, seed, off) < 0)
        return;
    for (unsigned i = 0; i < NUM_OFFSETS; i++)
        if (blk_read_verify(&b, seed, off[i], i & 1 ? 1 : 2) < 0)
            return;
    if (verify_only) {
        kprintf("TESTGUEST: blk verify ok seed %lu capacity %lu sectors\n", seed, b.capacity);
        return;
    }
    /* Past the end: wholly beyond, and straddling the last sector. */
    if (blk_expect_status(&b, BLK_T_IN, b.capacity, SECTOR, BLK_S_IOERR, "read beyond capacity") < 0 ||
        blk_expect_status(&b, BLK_T_IN, b.capacity - 1, 2 * SECTOR, BLK_S_IOERR, "read across capacity") < 0 ||
        blk_get_id(&b, id) < 0)
        return;
    kprintf("TESTGUEST: blk ok capacity %lu sectors id %s\n", b.capacity, id);
}
