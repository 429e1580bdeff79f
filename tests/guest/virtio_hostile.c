/* virtio-hostile mode: ring and queue set-up attacks, the reset storm and the mode
 * itself (see virtio_hostile.h; docs/hardening.md lists the attacks and what the host
 * must do). Every attack starts on a freshly reset device, so a broken ring never
 * spills into the next one; after it, after_attack() resets the device, checks it
 * works again, and checks that the other devices kept working. Options: testguest.rounds=R (default 1) repeats everything,
 * testguest.pause_s=S (default 0) idles S s after each round (for the host's samples),
 * testguest.storm=N (default 100) resets per device in the reset storm, x100 notifies
 * in the notify storm. */
#include "virtio_hostile.h"

#define F_NEXT VIRTQ_DESC_F_NEXT
#define F_WRITE VIRTQ_DESC_F_WRITE
#define F_IND HOSTILE_DESC_F_INDIRECT

static void set_desc(volatile struct virtq_desc *t, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    t[i] = (struct virtq_desc){ addr, len, flags, next };
}

static volatile struct virtq_desc *table(void) { return (volatile struct virtq_desc *)hb.table; }

/* A plausible first buffer for each device: a blk read header, an rng buffer, one PFN. */
struct first {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
};

static struct first first_buf(unsigned w)
{
    if (w == HD_BLK) {
        *hb.blk_hdr = (struct hblk_hdr){ 0, 0, 0 };
        return (struct first){ (uint64_t)hb.blk_hdr, sizeof(*hb.blk_hdr), 0 };
    }
    if (w == HD_RNG)
        return (struct first){ (uint64_t)hb.rng, 64, F_WRITE };
    hb.pfns[0] = (uint32_t)(ATTACK_PAGE(7) / HPAGE);
    return (struct first){ (uint64_t)hb.pfns, 4, 0 };
}

/* ---- ring attacks: the Queue must refuse them (DEVICE_NEEDS_RESET) ---- */

typedef void (*builder)(unsigned w, struct virtq *q, struct first f);

static void one(struct virtq *q, uint64_t addr, uint32_t len, uint16_t flags)
{
    set_desc(q->desc, 0, addr, len, flags, 0);
    virtq_repost(q, 0);
}
static void r_self(unsigned w, struct virtq *q, struct first f) { (void)w, one(q, f.addr, f.len, f.flags | F_NEXT); }
static void r_loop2(unsigned w, struct virtq *q, struct first f)
{
    (void)w;
    set_desc(q->desc, 0, f.addr, f.len, f.flags | F_NEXT, 1);
    set_desc(q->desc, 1, f.addr, f.len, f.flags | F_NEXT, 0);
    virtq_repost(q, 0);
}
static void r_all(unsigned w, struct virtq *q, struct first f)
{
    (void)w;
    for (unsigned i = 0; i < HQ_SIZE; i++)
        set_desc(q->desc, i, f.addr, f.len, f.flags | F_NEXT, (uint16_t)((i + 1) % HQ_SIZE));
    virtq_repost(q, 0);
}
static void r_next_oob(unsigned w, struct virtq *q, struct first f)
{
    (void)w;
    set_desc(q->desc, 0, f.addr, f.len, f.flags | F_NEXT, 0xfff0);
    virtq_repost(q, 0);
}
static void r_head_oob(unsigned w, struct virtq *q, struct first f)
{
    (void)w;
    set_desc(q->desc, 0, f.addr, f.len, f.flags, 0);
    virtq_repost(q, 0x8000);
}
static void r_far(unsigned w, struct virtq *q, struct first f) { (void)w, one(q, FAR_AWAY, f.len, f.flags); }
static void r_hole(unsigned w, struct virtq *q, struct first f) { (void)w, one(q, HOLE_ADDR, f.len, f.flags); }
static void r_regs(unsigned w, struct virtq *q, struct first f) { one(q, hdevs[w].dev.base, f.len, f.flags); }
static void r_giant(unsigned w, struct virtq *q, struct first f) { (void)w, one(q, f.addr, 0xffffffffu, f.flags); }
static void r_end(unsigned w, struct virtq *q, struct first f) { (void)w, one(q, hb.ram_top - HPAGE, 2 * HPAGE, f.flags); }
static void r_wrap(unsigned w, struct virtq *q, struct first f) { (void)w, one(q, ~0ull - 15, 64, f.flags); }
static void r_ahead(unsigned w, struct virtq *q, struct first f)
{
    (void)w;
    set_desc(q->desc, 0, f.addr, f.len, f.flags, 0);
    q->avail->idx = (uint16_t)(q->avail_idx + 1000);
}

/* Indirect tables (blk and rng offer INDIRECT_DESC). */
static void i_loop(unsigned w, struct virtq *q, struct first f)
{
    (void)w;
    set_desc(table(), 0, f.addr, f.len, f.flags | F_NEXT, 1);
    set_desc(table(), 1, f.addr, f.len, f.flags | F_NEXT, 0);
    one(q, (uint64_t)hb.table, 32, F_IND);
}
static void i_far(unsigned w, struct virtq *q, struct first f) { (void)w, (void)f, one(q, FAR_AWAY, 32, F_IND); }
static void i_end(unsigned w, struct virtq *q, struct first f) { (void)w, (void)f, one(q, hb.ram_top - 16, 32, F_IND); }
static void i_entry_hole(unsigned w, struct virtq *q, struct first f)
{
    (void)w;
    set_desc(table(), 0, HOLE_ADDR, f.len, f.flags, 0);
    one(q, (uint64_t)hb.table, 16, F_IND);
}
static void i_1025(unsigned w, struct virtq *q, struct first f)
{
    (void)w;
    for (unsigned i = 0; i < 1025; i++)
        set_desc(table(), i, f.addr, f.len, (uint16_t)(f.flags | (i < 1024 ? F_NEXT : 0)), (uint16_t)(i + 1));
    one(q, (uint64_t)hb.table, 1025 * 16, F_IND);
}
static void i_nested(unsigned w, struct virtq *q, struct first f)
{
    (void)w;
    set_desc(table(), 16, f.addr, f.len, f.flags, 0);
    set_desc(table(), 0, (uint64_t)hb.table + 256, 16, F_IND, 0);
    one(q, (uint64_t)hb.table, 16, F_IND);
}
static void i_next(unsigned w, struct virtq *q, struct first f)
{
    (void)w;
    set_desc(table(), 0, f.addr, f.len, f.flags, 0);
    set_desc(q->desc, 1, f.addr, f.len, f.flags, 0);
    set_desc(q->desc, 0, (uint64_t)hb.table, 16, F_IND | F_NEXT, 1);
    virtq_repost(q, 0);
}
static void i_len24(unsigned w, struct virtq *q, struct first f)
{
    (void)w;
    set_desc(table(), 0, f.addr, f.len, f.flags, 0);
    one(q, (uint64_t)hb.table, 24, F_IND);
}
static void i_len0(unsigned w, struct virtq *q, struct first f) { (void)w, (void)f, one(q, (uint64_t)hb.table, 0, F_IND); }
/* A well-formed chain of 200 descriptors, longer than the queue of 16 (the spec says
 * a driver must not; a device may serve it or refuse it, but must not hang). */
static void i_200(unsigned w, struct virtq *q, struct first f)
{
    for (unsigned i = 0; i < 200; i++)
        set_desc(table(), i, BIG_BUF + i * 512ul, 512, F_WRITE | (i < 199 ? F_NEXT : 0), (uint16_t)(i + 1));
    if (w == HD_BLK) {
        set_desc(table(), 0, f.addr, f.len, F_NEXT, 1);                  /* read header, sector 0 */
        set_desc(table(), 199, (uint64_t)hb.blk_status, 1, F_WRITE, 0);
    }
    one(q, (uint64_t)hb.table, 200 * 16, F_IND);
}

struct attack {
    const char *name;
    builder build;
    int expect;
};

static const struct attack ring_attacks[] = {
    { "descriptor whose next is itself", r_self, OUT_RESET },
    { "descriptor loop 0 -> 1 -> 0", r_loop2, OUT_RESET },
    { "chain through all 16 descriptors and around (longer than the queue)", r_all, OUT_RESET },
    { "next index 0xfff0 (queue of 16)", r_next_oob, OUT_RESET },
    { "head index 0x8000 in the avail ring", r_head_oob, OUT_RESET },
    { "buffer at 16 TiB (outside RAM)", r_far, OUT_RESET },
    { "buffer in the MMIO hole (0xd0000000)", r_hole, OUT_RESET },
    { "buffer on the device's own registers", r_regs, OUT_RESET },
    { "length 0xffffffff", r_giant, OUT_RESET },
    { "buffer crossing the end of RAM", r_end, OUT_RESET },
    { "buffer wrapping around 2^64", r_wrap, OUT_RESET },
    { "avail index 1000 ahead (queue of 16)", r_ahead, OUT_RESET },
};

static const struct attack indirect_attacks[] = {
    { "indirect table that loops", i_loop, OUT_RESET },
    { "indirect table at 16 TiB", i_far, OUT_RESET },
    { "indirect table crossing the end of RAM", i_end, OUT_RESET },
    { "indirect entry in the MMIO hole", i_entry_hole, OUT_RESET },
    { "indirect table of 1025 entries", i_1025, OUT_RESET },
    { "nested indirect table", i_nested, OUT_RESET },
    { "indirect descriptor with NEXT", i_next, OUT_RESET },
    { "indirect table of 24 bytes", i_len24, OUT_RESET },
    { "indirect table of 0 bytes", i_len0, OUT_RESET },
    { "well-formed indirect chain of 200 descriptors", i_200, OUT_RESET | OUT_USED },
};

static void ring_attack(unsigned w, const struct attack *a)
{
    struct hdev *h = &hdevs[w];
    h_attacks++;
    if (hdev_reinit(h) < 0)
        return;
    a->build(w, &h->q[0], first_buf(w));
    virtq_kick(&h->dev, &h->q[0]);
    int out = hq_outcome(h, &h->q[0], HQ_TIMEOUT_MS, 0);
    hcheck((out & a->expect) != 0, "%s: %s -> %s", h->name, a->name, outcome_name(out));
    after_attack(w, a->name);
}

/* ---- queue set-up: refused at DRIVER_OK ---- */

static void setup_attacks(unsigned w)
{
    struct hdev *h = &hdevs[w];
    uint64_t d = (uint64_t)h->rings[0], a = d + HPAGE, u = d + 2 * HPAGE;
    static const char *const names[] = { "descriptor table at 16 TiB", "avail ring in the MMIO hole",
                                         "used ring crossing the end of RAM", "descriptor table misaligned",
                                         "queue size 3", "queue size 0", "descriptor table on the device's registers" };
    const struct { uint32_t num; uint64_t d, a, u; } v[] = {
        { HQ_SIZE, FAR_AWAY, a, u }, { HQ_SIZE, d, HOLE_ADDR, u }, { HQ_SIZE, d, a, hb.ram_top - 64 },
        { HQ_SIZE, d + 8, a, u },    { 3, d, a, u },               { 0, d, a, u },
        { HQ_SIZE, h->dev.base, a, u },
    };
    for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        h_attacks++;
        uint32_t st = hdev_setup_raw(h, v[i].num, v[i].d, v[i].a, v[i].u);
        if (st != ~0u)
            hcheck((st & VSTATUS_NEEDS_RESET) != 0, "%s: %s -> status 0x%x at DRIVER_OK (want NEEDS_RESET)", h->name,
                   names[i], st);
        after_attack(w, names[i]);
    }
}


/* ---- reset storm: reset, initialise, break the ring, again; each must be refused ---- */

static void reset_storm(unsigned w, unsigned n)
{
    struct hdev *h = &hdevs[w];
    unsigned refused = 0;
    h_attacks += n;
    for (unsigned i = 0; i < n; i++) {
        if (hdev_reinit(h) < 0)
            break;
        r_self(w, &h->q[0], first_buf(w));
        virtq_kick(&h->dev, &h->q[0]);
        refused += hq_outcome(h, &h->q[0], HQ_TIMEOUT_MS, 0) == OUT_RESET;
    }
    hcheck(refused == n, "%s: reset storm: %u of %u descriptor loops answered with needs-reset", h->name, refused, n);
    after_attack(w, "reset storm");
}

/* ---- the mode ---- */

static void one_round(unsigned storm)
{
    for (unsigned w = 0; w < HD_COUNT; w++)
        for (unsigned i = 0; i < sizeof(ring_attacks) / sizeof(ring_attacks[0]); i++)
            ring_attack(w, &ring_attacks[i]);
    for (unsigned w = 0; w < HD_COUNT; w++) {
        if (!(hdevs[w].dev.features & HOSTILE_F_INDIRECT_DESC)) {
            /* Without the feature any indirect descriptor is a protocol error. */
            static const struct attack unnegotiated = { "indirect descriptor without INDIRECT_DESC", i_len24,
                                                        OUT_RESET };
            ring_attack(w, &unnegotiated);
            continue;
        }
        for (unsigned i = 0; i < sizeof(indirect_attacks) / sizeof(indirect_attacks[0]); i++)
            ring_attack(w, &indirect_attacks[i]);
    }
    for (unsigned w = 0; w < HD_COUNT; w++)
        setup_attacks(w);
    blk_requests();
    rng_requests();
    balloon_requests();
    for (unsigned w = 0; w < HD_COUNT; w++)
        register_abuse(w, 100 * storm);
    for (unsigned w = 0; w < HD_COUNT; w++)
        reset_storm(w, storm);
}

void run_virtio_hostile(void)
{
    uint64_t rounds = cmdline_u64("rounds", 1), pause_s = cmdline_u64("pause_s", 0);
    unsigned storm = (unsigned)cmdline_u64("storm", 100);
    uint64_t t0 = rdtsc();
    if (hostile_setup() == 0) {
        for (uint64_t r = 1; r <= rounds; r++) {
            one_round(storm);
            kprintf("TESTGUEST: hostile round %lu of %lu done: attacks=%u checks=%u failed=%u t=%lu ms\n", r, rounds,
                    h_attacks, h_checks, h_failed, (rdtsc() - t0) / (tsc_hz() / 1000));
            spin_seconds((unsigned)pause_s);
        }
    }
    kprintf("TESTGUEST: hostile summary rounds=%lu attacks=%u checks=%u passed=%u failed=%u\n", rounds, h_attacks,
            h_checks, h_checks - h_failed, h_failed);
    if (h_failed || !h_checks)
        kprintf("TESTGUEST: FAIL hostile: %u of %u checks failed\n", h_failed, h_checks);
    else
        kprintf("TESTGUEST: hostile ok\n");
}
