/* virtio-hostile mode, the harness: device handles that survive any number of resets,
 * the outcome probe, and the good requests that show a device works (see
 * virtio_hostile.h). */
#include "virtio_hostile.h"

struct hdev hdevs[HD_COUNT] = {
    [HD_BLK] = { .name = "blk", .wanted = HOSTILE_F_INDIRECT_DESC, .nq = 1 },
    [HD_RNG] = { .name = "rng", .wanted = HOSTILE_F_INDIRECT_DESC, .nq = 1 },
    /* The balloon offers no INDIRECT_DESC: asking for it must not matter. */
    [HD_BALLOON] = { .name = "balloon", .wanted = HOSTILE_F_INDIRECT_DESC, .nq = 2 },
};
struct hbufs hb;
unsigned h_checks, h_failed, h_attacks;

static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }

int hcheck(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    h_checks++;
    h_failed += !ok;
    console_lock();
    kputs_unlocked(ok ? "TESTGUEST: hostile PASS " : "TESTGUEST: FAIL hostile ");
    kvprintf(fmt, ap);
    kputs_unlocked("\n");
    console_unlock();
    va_end(ap);
    return ok;
}

/* virtio_init without its feature line (printed once at open, not at every reset of
 * the reset storm). 0 ok, -1 with a FAIL line. */
static int init_quiet(struct hdev *h)
{
    struct virtio_dev *d = &h->dev;
    vreg_write(d, VMMIO_STATUS, 0);
    uint32_t st = vreg_read(d, VMMIO_STATUS);
    if (st != 0)
        return hcheck(0, "%s: status 0x%x after reset, want 0", h->name, st), -1;
    vreg_write(d, VMMIO_STATUS, VSTATUS_ACKNOWLEDGE);
    vreg_write(d, VMMIO_STATUS, VSTATUS_ACKNOWLEDGE | VSTATUS_DRIVER);
    vreg_write(d, VMMIO_DEVICE_FEATURES_SEL, 0);
    uint64_t offered = vreg_read(d, VMMIO_DEVICE_FEATURES);
    vreg_write(d, VMMIO_DEVICE_FEATURES_SEL, 1);
    offered |= (uint64_t)vreg_read(d, VMMIO_DEVICE_FEATURES) << 32;
    d->features = (h->wanted & offered) | VIRTIO_F_VERSION_1;
    vreg_write(d, VMMIO_DRIVER_FEATURES_SEL, 0);
    vreg_write(d, VMMIO_DRIVER_FEATURES, (uint32_t)d->features);
    vreg_write(d, VMMIO_DRIVER_FEATURES_SEL, 1);
    vreg_write(d, VMMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
    vreg_write(d, VMMIO_STATUS, VSTATUS_ACKNOWLEDGE | VSTATUS_DRIVER | VSTATUS_FEATURES_OK);
    st = vreg_read(d, VMMIO_STATUS);
    if (!(st & VSTATUS_FEATURES_OK))
        return hcheck(0, "%s: FEATURES_OK refused (status 0x%x, features 0x%lx)", h->name, st, d->features), -1;
    return 0;
}

/* Queue i on its fixed memory, zeroed: a fresh ring whose descriptors from 0 on are free. */
static int program_queue(struct hdev *h, unsigned i)
{
    struct virtq *q = &h->q[i];
    uint8_t *m = h->rings[i];
    memset(m, 0, 3 * HPAGE);
    *q = (struct virtq){ .index = (uint16_t)i, .size = HQ_SIZE, .desc = (void *)m,
                         .avail = (void *)(m + HPAGE), .used = (void *)(m + 2 * HPAGE) };
    vreg_write(&h->dev, VMMIO_QUEUE_SEL, i);
    uint32_t max = vreg_read(&h->dev, VMMIO_QUEUE_NUM_MAX);
    if (max < HQ_SIZE)
        return hcheck(0, "%s queue %u: QueueNumMax %u < %u", h->name, i, max, HQ_SIZE), -1;
    vreg_write(&h->dev, VMMIO_QUEUE_NUM, HQ_SIZE);
    uint64_t a[3] = { (uint64_t)q->desc, (uint64_t)q->avail, (uint64_t)q->used };
    static const uint32_t regs[3] = { VMMIO_QUEUE_DESC, VMMIO_QUEUE_DRIVER, VMMIO_QUEUE_DEVICE };
    for (int r = 0; r < 3; r++) {
        vreg_write(&h->dev, regs[r], (uint32_t)a[r]);
        vreg_write(&h->dev, regs[r] + 4, (uint32_t)(a[r] >> 32));
    }
    vreg_write(&h->dev, VMMIO_QUEUE_READY, 1);
    return 0;
}

int hdev_reinit(struct hdev *h)
{
    if (init_quiet(h) < 0)
        return -1;
    for (unsigned i = 0; i < h->nq; i++)
        if (program_queue(h, i) < 0)
            return -1;
    vreg_write(&h->dev, VMMIO_STATUS, VSTATUS_ACKNOWLEDGE | VSTATUS_DRIVER | VSTATUS_FEATURES_OK | VSTATUS_DRIVER_OK);
    uint32_t st = vreg_read(&h->dev, VMMIO_STATUS);
    if ((st & (VSTATUS_NEEDS_RESET | VSTATUS_FAILED)) || !(st & VSTATUS_DRIVER_OK))
        return hcheck(0, "%s: status 0x%x after DRIVER_OK on good queues", h->name, st), -1;
    return 0;
}

uint32_t hdev_setup_raw(struct hdev *h, uint32_t num, uint64_t desc, uint64_t avail, uint64_t used)
{
    if (init_quiet(h) < 0)
        return ~0u;
    for (unsigned i = 1; i < h->nq; i++)
        if (program_queue(h, i) < 0)
            return ~0u;
    uint64_t a[3] = { desc, avail, used };
    static const uint32_t regs[3] = { VMMIO_QUEUE_DESC, VMMIO_QUEUE_DRIVER, VMMIO_QUEUE_DEVICE };
    vreg_write(&h->dev, VMMIO_QUEUE_SEL, 0);
    vreg_write(&h->dev, VMMIO_QUEUE_NUM, num);
    for (int r = 0; r < 3; r++) {
        vreg_write(&h->dev, regs[r], (uint32_t)a[r]);
        vreg_write(&h->dev, regs[r] + 4, (uint32_t)(a[r] >> 32));
    }
    vreg_write(&h->dev, VMMIO_QUEUE_READY, 1);
    vreg_write(&h->dev, VMMIO_STATUS, VSTATUS_ACKNOWLEDGE | VSTATUS_DRIVER | VSTATUS_FEATURES_OK | VSTATUS_DRIVER_OK);
    return vreg_read(&h->dev, VMMIO_STATUS);
}

void hq_post(struct hdev *h, struct virtq *q, uint16_t head)
{
    virtq_repost(q, head);
    virtq_kick(&h->dev, q);
}

int hq_outcome(struct hdev *h, struct virtq *q, uint64_t ms, uint32_t *len)
{
    uint64_t end = rdtsc() + ms * (tsc_hz() / 1000);
    for (;;) {
        if (q->used->idx != q->last_used) {
            mb();                              /* idx before the element it covers */
            if (len)
                *len = q->used->ring[q->last_used % q->size].len;
            q->last_used++;
            vreg_write(&h->dev, VMMIO_INTERRUPT_ACK, vreg_read(&h->dev, VMMIO_INTERRUPT_STATUS) & 1);
            return OUT_USED;
        }
        if (vreg_read(&h->dev, VMMIO_STATUS) & VSTATUS_NEEDS_RESET)
            return OUT_RESET;
        if (rdtsc() > end)
            return OUT_NONE;
        cpu_relax();
    }
}

const char *outcome_name(int out)
{
    return out == OUT_USED ? "used" : out == OUT_RESET ? "needs-reset" : "no answer";
}

/* ---- good requests ---- */

static uint64_t blk_word(unsigned salt, uint64_t sector, unsigned i)
{
    uint64_t x = (salt + 1) * 0x9e3779b97f4a7c15ul ^ (sector << 9 | i);
    x ^= x >> 29, x *= 0xbf58476d1ce4e5b9ul, x ^= x >> 32;
    return x;
}

static int blk_io(uint32_t type, uint64_t sector, const char **why)
{
    struct hdev *h = &hdevs[HD_BLK];
    *hb.blk_hdr = (struct hblk_hdr){ type, 0, sector };
    *hb.blk_status = 0xff;
    struct vbuf b[3] = { { (uint64_t)hb.blk_hdr, 16, 0 }, { (uint64_t)hb.blk_data, HPAGE, type == 0 }, { (uint64_t)hb.blk_status, 1, 1 } };
    if (virtq_transfer(&h->dev, &h->q[0], b, 3, 0, "hostile blk check") < 0)
        return *why = "request not completed", -1;
    if (*hb.blk_status != 0)
        return *why = type ? "write did not answer OK" : "read did not answer OK", -1;
    return 0;
}

int good_blk(unsigned salt, const char **why)
{
    uint64_t sector = (salt * 8ul) % (hb.blk_capacity - 8), *w = (uint64_t *)hb.blk_data;
    for (unsigned i = 0; i < HPAGE / 8; i++)
        w[i] = blk_word(salt, sector, i);
    if (blk_io(1, sector, why) < 0)
        return -1;
    memset(hb.blk_data, 0, HPAGE);
    if (blk_io(0, sector, why) < 0)
        return -1;
    for (unsigned i = 0; i < HPAGE / 8; i++)
        if (w[i] != blk_word(salt, sector, i))
            return *why = "data read back differs from what was written", -1;
    return 0;
}

int good_rng(const char **why)
{
    struct hdev *h = &hdevs[HD_RNG];
    memset(hb.rng, 0xa5, HPAGE);
    struct vbuf b = { (uint64_t)hb.rng + 64, 256, 1 };
    uint32_t len = 0;
    if (virtq_transfer(&h->dev, &h->q[0], &b, 1, &len, "hostile rng check") < 0)
        return *why = "request not completed", -1;
    if (len == 0 || len > 256)
        return *why = "used length not in 1..256", -1;
    for (unsigned i = 0; i < HPAGE; i++)
        if ((i < 64 || i >= 64 + len) && hb.rng[i] != 0xa5)
            return *why = "bytes outside the buffer changed", -1;
    int zero = 1;
    for (unsigned i = 64; i < 64 + len; i++)
        zero &= hb.rng[i] == 0;
    return zero ? (*why = "all zero", -1) : 0;
}

/* 16 pages of the balloon area: patterned, inflated (must read back zero: the host
 * discarded them), deflated, patterned again. */
int good_balloon(unsigned salt, const char **why)
{
    struct hdev *h = &hdevs[HD_BALLOON];
    uint64_t base = hb.balloon_area + (salt % 4) * 16 * HPAGE;
    for (unsigned i = 0; i < 16; i++) {
        *(volatile uint64_t *)(base + i * HPAGE) = base + i * HPAGE + salt;
        hb.pfns[i] = (uint32_t)(base / HPAGE + i);
    }
    struct vbuf b = { (uint64_t)hb.pfns, 16 * 4, 0 };
    if (virtq_transfer(&h->dev, &h->q[0], &b, 1, 0, "hostile balloon inflate") < 0)
        return *why = "inflate not completed", -1;
    for (unsigned i = 0; i < 16; i++)
        if (*(volatile uint64_t *)(base + i * HPAGE) != 0)
            return *why = "an inflated page was not discarded", -1;
    if (virtq_transfer(&h->dev, &h->q[1], &b, 1, 0, "hostile balloon deflate") < 0)
        return *why = "deflate not completed", -1;
    for (unsigned i = 0; i < 16; i++)
        *(volatile uint64_t *)(base + i * HPAGE) = ~salt;
    return 0;
}

int hdev_good(unsigned which, unsigned salt, const char **why)
{
    return which == HD_BLK ? good_blk(salt, why) : which == HD_RNG ? good_rng(why) : good_balloon(salt, why);
}

void after_attack(unsigned which, const char *what)
{
    static unsigned salt;
    const char *why = "";
    int ok = hdev_reinit(&hdevs[which]) == 0 && hdev_good(which, ++salt, &why) == 0;
    hcheck(ok, "%s works after reset (after %s) %s", hdevs[which].name, what, why);
    for (unsigned d = 0; d < HD_COUNT; d++) {
        if (d == which)
            continue;
        why = "";
        ok = hdev_good(d, ++salt, &why) == 0;
        hcheck(ok, "%s still works (after %s on %s) %s", hdevs[d].name, what, hdevs[which].name, why);
        if (!ok)   /* one failure would otherwise repeat after every later attack */
            hdev_reinit(&hdevs[d]);
    }
}

/* ---- set-up ---- */

int hostile_setup(void)
{
    static const uint32_t ids[HD_COUNT] = { VIRTIO_ID_BLOCK, VIRTIO_ID_RNG, VIRTIO_ID_BALLOON };
    hb.blk_hdr = dma_alloc(sizeof(*hb.blk_hdr));
    hb.blk_status = dma_alloc(1);
    hb.blk_data = dma_alloc(HPAGE);
    hb.rng = dma_alloc(HPAGE);
    hb.pfns = dma_alloc(2 * HPAGE);
    hb.table = dma_alloc(5 * HPAGE);
    hb.balloon_area = 8ul << 20;           /* above the DMA area, unused otherwise */
    hb.ram_top = g.ram_end;
    if (!hb.blk_hdr || !hb.blk_status || !hb.blk_data || !hb.rng || !hb.pfns || !hb.table ||
        !ram_range_ok(hb.balloon_area, BALLOON_AREA_PAGES * HPAGE) || !ram_range_ok(BIG_BUF, BIG_BUF))
        return hcheck(0, "set-up: no DMA memory, or no RAM at 8-24 MiB"), -1;
    for (unsigned d = 0; d < HD_COUNT; d++) {
        struct hdev *h = &hdevs[d];
        if (virtio_find(ids[d], 0, &h->dev) < 0)
            return h_failed++, -1;
        for (unsigned i = 0; i < h->nq; i++)
            if (!(h->rings[i] = dma_alloc(3 * HPAGE)))
                return h_failed++, -1;
        if (hdev_reinit(h) < 0)
            return -1;
        kprintf("TESTGUEST: hostile %s at slot %u, features 0x%lx\n", h->name, h->dev.slot, h->dev.features);
    }
    hb.blk_capacity = virtio_config_read64(&hdevs[HD_BLK].dev, 0);
    if (hb.blk_capacity < 256)
        return hcheck(0, "set-up: blk capacity %lu sectors (need >= 256)", hb.blk_capacity), -1;
    const char *why = "";
    for (unsigned d = 0; d < HD_COUNT; d++)
        if (!hcheck(hdev_good(d, d, &why) == 0, "%s works before any attack %s", hdevs[d].name, why))
            return -1;
    return 0;
}
