/* virtio-hostile mode: attacks inside well-formed rings (requests the device must
 * answer, with an error where it has a status), register abuse and storms (see
 * virtio_hostile.h). Each attack starts on a freshly reset device. */
#include "virtio_hostile.h"

/* ---- request-level attacks: answered (used), with an error where there is a status ---- */

/* Header of hdr_len bytes, one data descriptor (if data), the status byte (if with_status).
 * want_status -1: any. */
static void blk_attack(const char *name, uint32_t type, uint64_t sector, uint32_t hdr_len, uint64_t data,
                       uint32_t data_len, int dw, int with_status, int want_status)
{
    struct hdev *h = &hdevs[HD_BLK];
    h_attacks++;
    if (hdev_reinit(h) < 0)
        return;
    struct vbuf b[3];
    unsigned n = 0;
    *hb.blk_hdr = (struct hblk_hdr){ type, 0, sector };
    *hb.blk_status = 0xee;
    b[n++] = (struct vbuf){ (uint64_t)hb.blk_hdr, hdr_len, 0 };
    if (data)
        b[n++] = (struct vbuf){ data, data_len, dw };
    if (with_status)
        b[n++] = (struct vbuf){ (uint64_t)hb.blk_status, 1, 1 };
    virtq_add(&h->q[0], b, n);
    virtq_kick(&h->dev, &h->q[0]);
    uint32_t len = ~0u;
    int out = hq_outcome(h, &h->q[0], HQ_TIMEOUT_MS, &len);
    int st = with_status ? *hb.blk_status : -1;
    int ok = out == OUT_USED && (with_status ? (want_status < 0 ? st != 0xee : st == want_status) : len == 0);
    hcheck(ok, "blk: %s -> %s, status %d (want %d), used len %u", name, outcome_name(out), st, want_status, len);
    after_attack(HD_BLK, name);
}

void blk_requests(void)
{
    uint64_t cap = hb.blk_capacity, data = (uint64_t)hb.blk_data, rings = (uint64_t)hdevs[HD_BLK].rings[0];
    blk_attack("read beyond the end", 0, cap, 16, data, 512, 1, 1, 1);
    blk_attack("read across the end", 0, cap - 1, 16, data, 1024, 1, 1, 1);
    blk_attack("read at sector 2^63", 0, 1ul << 63, 16, data, 512, 1, 1, 1);
    blk_attack("write at sector ~0", 1, ~0ul, 16, data, 512, 0, 1, 1);
    blk_attack("read of 100 bytes", 0, 0, 16, data, 100, 1, 1, 1);
    blk_attack("8-byte header", 0, 0, 8, data, 512, 1, 1, 1);
    blk_attack("request type 0x7f", 0x7f, 0, 16, data, 512, 1, 1, 2);
    blk_attack("write with device-writable data", 1, 0, 16, data, 512, 1, 1, 1);
    blk_attack("read into device-readable data", 0, 0, 16, data, 512, 0, 1, 1);
    blk_attack("no status byte", 1, 0, 16, data, 512, 0, 0, -1);
    blk_attack("data over its own used ring", 0, 0, 16, rings + 2 * HPAGE, 512, 1, 1, 0);
    blk_attack("data over its own descriptor table", 0, 0, 16, rings, 512, 1, 1, 0);
    blk_attack("4 MiB read in one descriptor", 0, 0, 16, BIG_BUF, 4u << 20, 1, 1, cap >= 8192 ? 0 : 1);
}

static void rng_attack(const char *name, uint64_t addr, uint32_t len, int dw, uint32_t max_len)
{
    struct hdev *h = &hdevs[HD_RNG];
    h_attacks++;
    if (hdev_reinit(h) < 0)
        return;
    struct vbuf b = { addr, len, dw };
    virtq_add(&h->q[0], &b, 1);
    virtq_kick(&h->dev, &h->q[0]);
    uint32_t got = ~0u;
    int out = hq_outcome(h, &h->q[0], HQ_TIMEOUT_MS, &got);
    hcheck(out == OUT_USED && got <= max_len, "rng: %s -> %s, used len %u (want <= %u)", name, outcome_name(out), got,
           max_len);
    after_attack(HD_RNG, name);
}

/* On the balloon's queue qi: n buffers; afterwards `discarded` must read 0 and `kept`
 * (0: none) its pattern (the host must not act on a buffer it skipped). */
static void balloon_attack(const char *name, unsigned qi, const struct vbuf *b, unsigned n, uint64_t discarded,
                           uint64_t kept)
{
    struct hdev *h = &hdevs[HD_BALLOON];
    h_attacks++;
    if (hdev_reinit(h) < 0)
        return;
    for (unsigned i = 0; i < 8; i++)
        *(volatile uint64_t *)ATTACK_PAGE(i) = ATTACK_PAGE(i) ^ 0x5a5a5a5a;
    virtq_add(&h->q[qi], b, n);
    virtq_kick(&h->dev, &h->q[qi]);
    int out = hq_outcome(h, &h->q[qi], HQ_TIMEOUT_MS, 0);
    uint64_t dv = discarded ? *(volatile uint64_t *)discarded : 0, kv = kept ? *(volatile uint64_t *)kept : 0;
    int ok = out == OUT_USED && dv == 0 && (!kept || kv == (kept ^ 0x5a5a5a5a));
    hcheck(ok, "balloon %s: %s -> %s%s%s", qi ? "deflate" : "inflate", name, outcome_name(out),
           dv ? ", but the good page was not discarded" : "",
           kept && kv != (kept ^ 0x5a5a5a5a) ? ", but a page in a skipped buffer was discarded" : "");
    after_attack(HD_BALLOON, name);
}

void balloon_requests(void)
{
    uint32_t *p = hb.pfns, top = (uint32_t)(hb.ram_top / HPAGE);
    const uint32_t bad[] = { 0xffffffffu, top, top + 1, (uint32_t)(HOLE_ADDR / HPAGE), 0xc0000, 0xfee00, 0x100000 };
    for (unsigned q = 0; q < 2; q++) {
        unsigned n = 0;
        for (; n < sizeof(bad) / sizeof(bad[0]); n++)
            p[n] = bad[n];
        p[n++] = (uint32_t)(ATTACK_PAGE(0) / HPAGE);
        struct vbuf b = { (uint64_t)p, n * 4, 0 };
        balloon_attack("PFNs outside RAM (~0, end of RAM, hole, MMIO, LAPIC, 4 GiB) around a good one", q, &b, 1,
                       q ? 0 : ATTACK_PAGE(0), 0);
        for (unsigned i = 0; i < 512; i++)
            p[i] = (uint32_t)(ATTACK_PAGE(1) / HPAGE);
        struct vbuf two[2] = { { (uint64_t)p, 1024, 0 }, { (uint64_t)(p + 256), 1024, 0 } };
        balloon_attack("one PFN 512 times in two descriptors", q, two, 2, q ? 0 : ATTACK_PAGE(1), 0);
    }
    for (unsigned i = 0; i < 257; i++)
        p[i] = (uint32_t)(ATTACK_PAGE(2) / HPAGE);
    struct vbuf b = { (uint64_t)p, 257 * 4, 0 };
    balloon_attack("257 PFNs in one descriptor (limit 256)", 0, &b, 1, 0, ATTACK_PAGE(2));
    b.len = 3;
    balloon_attack("PFN array of 3 bytes", 0, &b, 1, 0, ATTACK_PAGE(2));
    b = (struct vbuf){ (uint64_t)p, 4, 1 };
    balloon_attack("device-writable PFN array", 0, &b, 1, 0, ATTACK_PAGE(2));
    b = (struct vbuf){ (uint64_t)p, 0, 0 };
    balloon_attack("PFN array of 0 bytes", 0, &b, 1, 0, ATTACK_PAGE(2));
}

void rng_requests(void)
{
    rng_attack("device-readable buffer only", (uint64_t)hb.rng, 64, 0, 0);
    rng_attack("zero-length buffer", (uint64_t)hb.rng, 0, 1, 0);
    /* Valid but huge: the device caps what it hands out per chain (64 KiB). */
    rng_attack("16 MiB buffer", BIG_BUF, 16u << 20, 1, 64u << 10);
}

/* ---- register abuse: nothing a driver may do, all of it ignored or refused ---- */

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

void register_abuse(unsigned w, unsigned notifies)
{
    struct hdev *h = &hdevs[w];
    struct virtio_dev *d = &h->dev;
    const char *why = "";
    uint64_t seed = rdtsc() | 1;

    /* Queue registers after DRIVER_OK (the device owns the queues now), for queue 0 and
     * for a queue that does not exist: ignored, the device keeps working unreset. */
    h_attacks++;
    for (uint32_t sel = 0; sel < 2; sel++) {
        vreg_write(d, VMMIO_QUEUE_SEL, sel ? 0xffff : 0);
        vreg_write(d, VMMIO_QUEUE_DESC, (uint32_t)HOLE_ADDR);
        vreg_write(d, VMMIO_QUEUE_DESC + 4, 0);
        vreg_write(d, VMMIO_QUEUE_NUM, 3);
        vreg_write(d, VMMIO_QUEUE_READY, 0);
    }
    hcheck(hdev_good(w, 7, &why) == 0, "%s: queue registers written after DRIVER_OK are ignored %s", h->name, why);

    /* A notify storm (random queue indices, nothing available) and garbage interrupt
     * acks: nothing may be used, and the device keeps working unreset. */
    h_attacks++;
    uint16_t used_before = h->q[0].used->idx;
    for (unsigned i = 0; i < notifies; i++) {
        vreg_write(d, VMMIO_QUEUE_NOTIFY, (uint32_t)rnd(&seed) & 0xffff);
        if (i % 64 == 0)
            vreg_write(d, VMMIO_INTERRUPT_ACK, (uint32_t)rnd(&seed));
    }
    int quiet = h->q[0].used->idx == used_before;
    hcheck(quiet && hdev_good(w, 8, &why) == 0, "%s: %u notifies with random queue indices: %s %s", h->name, notifies,
           quiet ? "nothing used" : "buffers used from an empty ring", why);

    /* Config-space writes at every offset (the balloon's `actual` ends up restored). */
    h_attacks++;
    for (unsigned i = 0; i < 1024; i++)
        vreg_write(d, VMMIO_CONFIG + (uint32_t)((rnd(&seed) % 0x100) & ~3ul), (uint32_t)rnd(&seed));
    if (w == HD_BALLOON)
        vreg_write(d, VMMIO_CONFIG + 4, 0);
    hcheck(hdev_good(w, 9, &why) == 0, "%s: 1024 config-space writes %s", h->name, why);

    /* Status abuse: device-owned bits, FAILED on a running device, bits cleared without
     * a reset; then, after a reset, DRIVER_OK and FEATURES_OK out of order. */
    h_attacks++;
    vreg_write(d, VMMIO_STATUS, 0xff);
    vreg_write(d, VMMIO_STATUS, VSTATUS_ACKNOWLEDGE);
    vreg_write(d, VMMIO_STATUS, 0);
    vreg_write(d, VMMIO_STATUS, VSTATUS_DRIVER_OK);
    uint32_t st1 = vreg_read(d, VMMIO_STATUS);
    vreg_write(d, VMMIO_STATUS, VSTATUS_ACKNOWLEDGE | VSTATUS_FEATURES_OK);
    uint32_t st2 = vreg_read(d, VMMIO_STATUS);
    hcheck(!(st1 & VSTATUS_DRIVER_OK) && !(st2 & VSTATUS_FEATURES_OK),
           "%s: DRIVER_OK before FEATURES_OK (status 0x%x) and FEATURES_OK before DRIVER (status 0x%x) refused",
           h->name, st1, st2);
    after_attack(w, "status register abuse");
}
