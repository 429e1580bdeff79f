/* virtio-rng, virtio-console and virtio-balloon modes, and the dispatch of every
 * `virtio-*` mode name (and `balloon-follow`) (boot.c does not know them: they arrive as MODE_UNKNOWN). */
#include "virtio.h"
#include "virtio_hostile.h"

#define MIB (1ul << 20)
#define PAGE 4096ul

/* ---- rng (virtio 1.2 §5.4): two 4 KiB buffers, neither all zero, not equal ---- */

static int rng_fill(struct virtio_dev *d, struct virtq *q, uint8_t *buf, uint32_t size)
{
    /* The device may return fewer bytes than offered: ask again for the rest. */
    for (uint32_t got = 0, tries = 0; got < size; tries++) {
        struct vbuf b = { (uint64_t)buf + got, size - got, 1 };
        uint32_t len;
        if (virtq_transfer(d, q, &b, 1, &len, "rng request") < 0)
            return -1;
        if (len > size - got || tries > 1000) {
            kprintf("TESTGUEST: FAIL rng: used len %u for %u bytes (try %u)\n", len, size - got, tries);
            return -1;
        }
        got += len;
    }
    return 0;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

void run_virtio_rng(void)
{
    struct virtio_dev d;
    struct virtq q;
    if (virtio_find(VIRTIO_ID_RNG, 0, &d) < 0 || virtio_init(&d, 0) < 0 || virtq_setup(&d, &q, 0, 16) < 0)
        return;
    uint8_t *a = dma_alloc(PAGE), *b = dma_alloc(PAGE);
    if (!a || !b || virtio_driver_ok(&d) < 0 || rng_fill(&d, &q, a, PAGE) < 0 || rng_fill(&d, &q, b, PAGE) < 0)
        return;
    if (all_zero(a, PAGE) || all_zero(b, PAGE) || !memcmp(a, b, PAGE)) {
        kprintf("TESTGUEST: FAIL rng: buffers all zero (%d, %d) or equal (%d)\n", all_zero(a, PAGE),
                all_zero(b, PAGE), !memcmp(a, b, PAGE));
        return;
    }
    kprintf("TESTGUEST: rng ok %lu bytes\n", 2 * PAGE);
}

/* ---- console (virtio 1.2 §5.3): one line through port 0's transmitq ---- */

void run_virtio_console(void)
{
    static const char line[] = "TESTGUEST: hello from hvc0\n";
    struct virtio_dev d;
    struct virtq rx, tx;
    if (virtio_find(VIRTIO_ID_CONSOLE, 0, &d) < 0 || virtio_init(&d, 0) < 0 ||
        virtq_setup(&d, &rx, 0, 16) < 0 || virtq_setup(&d, &tx, 1, 16) < 0)
        return;
    char *buf = dma_alloc(sizeof(line)), *in = dma_alloc(PAGE);
    if (!buf || !in)
        return;
    memcpy(buf, line, sizeof(line) - 1);
    /* A receive buffer is posted as a driver would; nothing is expected in it. */
    struct vbuf rb = { (uint64_t)in, PAGE, 1 };
    virtq_add(&rx, &rb, 1);
    if (virtio_driver_ok(&d) < 0)
        return;
    virtq_kick(&d, &rx);
    struct vbuf tb = { (uint64_t)buf, sizeof(line) - 1, 0 };
    if (virtq_transfer(&d, &tx, &tb, 1, 0, "console transmit") < 0)
        return;
    kprintf("TESTGUEST: console sent %lu bytes on hvc0\n", sizeof(line) - 1);
}

/* ---- balloon (virtio 1.2 §5.5): touch, inflate, check, deflate, touch ---- */

#define BALLOON_BASE (8 * MIB)          /* above the DMA area */
#define BALLOON_EXTRA (16 * MIB)        /* touched beyond the target */

static void touch_pages(uint64_t start, uint64_t pages, uint64_t salt)
{
    for (uint64_t p = 0; p < pages; p++)
        *(volatile uint64_t *)(start + p * PAGE) = (start + p * PAGE) ^ salt;
}

/* Sends the PFNs first_pfn .. first_pfn+pages-1 through queue q, 256 per buffer,
 * up to 16 chains per notification, waiting for each batch; 0 ok, -1 FAIL printed.
 * Shared with the balloon-follow mode. */
int balloon_send_pfns(struct virtio_dev *d, struct virtq *q, uint32_t *pfns, uint32_t first_pfn, uint32_t pages,
                      const char *what)
{
    for (uint32_t done = 0; done < pages;) {
        unsigned chains = 0;
        for (; chains < BALLOON_CHAINS_PER_KICK && done < pages; chains++) {
            uint32_t n = pages - done < BALLOON_PFNS_PER_DESC ? pages - done : BALLOON_PFNS_PER_DESC;
            uint32_t *batch = pfns + chains * BALLOON_PFNS_PER_DESC;
            for (uint32_t i = 0; i < n; i++)
                batch[i] = first_pfn + done + i;
            struct vbuf b = { (uint64_t)batch, n * 4, 0 };
            virtq_add(q, &b, 1);
            done += n;
        }
        virtq_kick(d, q);
        for (unsigned c = 0; c < chains; c++) {
            uint32_t id, len;
            if (!virtq_poll(q, 5000, &id, &len)) {
                kprintf("TESTGUEST: FAIL balloon %s: no completion in 5 s (status 0x%x, %u pages sent)\n", what,
                        vreg_read(d, VMMIO_STATUS), done);
                return -1;
            }
        }
        if (virtio_check_ack_irq(d, what) < 0)
            return -1;
    }
    return 0;
}

void run_virtio_balloon(void)
{
    struct virtio_dev d;
    struct virtq inflate, deflate;
    if (virtio_find(VIRTIO_ID_BALLOON, 0, &d) < 0 || virtio_init(&d, 0) < 0 ||
        virtq_setup(&d, &inflate, 0, 64) < 0 || virtq_setup(&d, &deflate, 1, 64) < 0)
        return;
    uint32_t *pfns = dma_alloc(4ul * BALLOON_PFNS_PER_DESC * BALLOON_CHAINS_PER_KICK);
    if (!pfns || virtio_driver_ok(&d) < 0)
        return;
    uint32_t target = virtio_config_read32(&d, 0);
    uint64_t touched = (uint64_t)target * PAGE + BALLOON_EXTRA;
    if (target == 0 || !ram_range_ok(BALLOON_BASE, touched)) {
        kprintf("TESTGUEST: FAIL balloon: target %u pages; need RAM at 0x%lx-0x%lx\n", target,
                (uint64_t)BALLOON_BASE, BALLOON_BASE + touched);
        return;
    }
    touch_pages(BALLOON_BASE, touched / PAGE, 0x5a5a5a5a5a5a5a5aul);
    kprintf("TESTGUEST: balloon touched %lu MiB (target %u pages)\n", touched / MIB, target);
    spin_seconds(3);

    if (balloon_send_pfns(&d, &inflate, pfns, (uint32_t)(BALLOON_BASE / PAGE), target, "inflate") < 0)
        return;
    vreg_write(&d, VMMIO_CONFIG + 4, target);   /* actual */
    kprintf("TESTGUEST: balloon inflated %u pages\n", target);
    spin_seconds(3);
    /* After the host's RSS sample: a few inflated pages must read back as zero
     * (discarded by the host); reading more would make them resident again. */
    for (uint32_t i = 0; i < 4; i++) {
        uint64_t a = BALLOON_BASE + (uint64_t)(i * (target / 4)) * PAGE;
        if (*(volatile uint64_t *)a != 0) {
            kprintf("TESTGUEST: FAIL balloon: inflated page 0x%lx reads 0x%lx, not 0 (not discarded)\n", a,
                    *(volatile uint64_t *)a);
            return;
        }
    }

    if (balloon_send_pfns(&d, &deflate, pfns, (uint32_t)(BALLOON_BASE / PAGE), target, "deflate") < 0)
        return;
    touch_pages(BALLOON_BASE, target, 0xa5a5a5a5a5a5a5a5ul);
    vreg_write(&d, VMMIO_CONFIG + 4, 0);
    kprintf("TESTGUEST: balloon deflated %u pages\n", target);
    spin_seconds(3);
}

/* ---- dispatch ---- */

int run_virtio_mode(const char *name)
{
    static const char *const names[] = { "virtio-blk", "virtio-blk-verify", "virtio-blk-ro", "virtio-rng",
                                         "virtio-console", "virtio-net", "virtio-balloon",
                                         "balloon-follow", "virtio-hostile" };
    unsigned i = 0, n = sizeof(names) / sizeof(names[0]);
    while (i < n && !(strnlen(name, 32) == strnlen(names[i], 32) && !memcmp(name, names[i], strnlen(name, 32))))
        i++;
    switch (i) {
    case 0: run_virtio_blk(0, 0); break;
    case 1: run_virtio_blk(1, 0); break;
    case 2: run_virtio_blk(0, 1); break;
    case 3: run_virtio_rng(); break;
    case 4: run_virtio_console(); break;
    case 5: run_virtio_net(); break;
    case 6: run_virtio_balloon(); break;
    case 7: run_virtio_balloon_follow(); break;   /* virtio_balloon_follow.c */
    case 8: run_virtio_hostile(); break;          /* virtio_hostile*.c */
    default: return 0;
    }
    return 1;
}
