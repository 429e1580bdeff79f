/* The polled virtio-mmio driver core: timing, command-line options, DMA memory,
 * device discovery and initialisation, split virtqueues (virtio 1.2 §2.7). */
#include "virtio.h"

#define ZERO_PAGE 0x7000ul         /* where the VMM puts struct boot_params (RSI at entry) */
#define BP_HDR_MAGIC 0x202          /* "HdrS" */
#define BP_CMD_LINE_PTR 0x228

static inline void mb(void) { __asm__ volatile("mfence" ::: "memory"); }

/* ---- timing ---- */

uint64_t tsc_hz(void)
{
    static uint64_t hz;
    if (hz)
        return hz;
    uint32_t a, b, c, d;
    cpuid(0x40000000, &a, &b, &c, &d);          /* hypervisor leaf range */
    if (a >= 0x40000010 && a < 0x40010000) {
        cpuid(0x40000010, &a, &b, &c, &d);      /* EAX: TSC kHz */
        if (a)
            return hz = (uint64_t)a * 1000;
    }
    cpuid(0, &a, &b, &c, &d);
    uint32_t max_leaf = a;
    if (max_leaf >= 0x15) {
        cpuid(0x15, &a, &b, &c, &d);            /* TSC = crystal * EBX / EAX */
        if (a && b && c)
            return hz = (uint64_t)c * b / a;
    }
    if (max_leaf >= 0x16) {
        cpuid(0x16, &a, &b, &c, &d);            /* EAX: base MHz */
        if (a & 0xffff)
            return hz = (uint64_t)(a & 0xffff) * 1000000;
    }
    return hz = 2500000000ul;
}

static uint64_t ms_to_cycles(uint64_t ms) { return ms * (tsc_hz() / 1000); }

void spin_seconds(unsigned s)
{
    uint64_t end = rdtsc() + ms_to_cycles(1000ul * s);
    while (rdtsc() < end)
        cpu_relax();
}

/* ---- command line ---- */

/* The command line through the zero page the VMM left at ZERO_PAGE (the guest does not
 * overwrite low memory in these modes). "HdrS" guards against another layout. */
static const char *boot_cmdline(void)
{
    if (mmio_read32(ZERO_PAGE + BP_HDR_MAGIC) != 0x53726448u)
        return "";
    uint32_t p = mmio_read32(ZERO_PAGE + BP_CMD_LINE_PTR);
    return p && ram_range_ok(p, CMDLINE_MAX) ? (const char *)(uint64_t)p : "";
}

const char *cmdline_option(const char *key, size_t *len)
{
    const char *cl = boot_cmdline();
    size_t klen = strnlen(key, 64);
    for (size_t i = 0; i + 10 < CMDLINE_MAX && cl[i]; i++) {
        if ((i && cl[i - 1] != ' ') || !str_starts(cl + i, "testguest.") ||
            !str_starts(cl + i + 10, key) || cl[i + 10 + klen] != '=')
            continue;
        const char *v = cl + i + 11 + klen;
        for (*len = 0; v[*len] && v[*len] != ' ' && *len < CMDLINE_MAX; ++*len)
            ;
        return v;
    }
    return 0;
}

uint64_t cmdline_u64(const char *key, uint64_t dflt)
{
    size_t len;
    const char *v = cmdline_option(key, &len);
    if (!v || !len)
        return dflt;
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return dflt;
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    return n;
}

int cmdline_ipv4(const char *key, uint8_t ip[4])
{
    size_t len, i = 0;
    const char *v = cmdline_option(key, &len);
    if (!v)
        return -1;
    for (int part = 0; part < 4; part++) {
        unsigned n = 0, digits = 0;
        for (; i < len && v[i] >= '0' && v[i] <= '9' && digits < 3; i++, digits++)
            n = n * 10 + (unsigned)(v[i] - '0');
        if (!digits || n > 255 || (part < 3 && (i >= len || v[i++] != '.')))
            return -1;
        ip[part] = (uint8_t)n;
    }
    return i == len ? 0 : -1;
}

/* ---- DMA memory ---- */

int ram_range_ok(uint64_t start, uint64_t len)
{
    for (unsigned i = 0; i < g.e820_count; i++)
        if (g.e820[i].type == 1 && g.e820[i].addr <= start &&
            start + len <= g.e820[i].addr + g.e820[i].size && start + len <= g.mapped_limit)
            return 1;
    return 0;
}

void *dma_alloc(uint64_t bytes)
{
    static uint64_t next = VIRTIO_DMA_BASE;
    bytes = (bytes + 4095) & ~4095ul;
    if (next + bytes > VIRTIO_DMA_BASE + VIRTIO_DMA_SIZE || !ram_range_ok(next, bytes)) {
        kprintf("TESTGUEST: FAIL virtio: no DMA memory for %lu bytes at 0x%lx\n", bytes, next);
        return 0;
    }
    void *p = (void *)next;
    next += bytes;
    memset(p, 0, bytes);
    return p;
}

/* ---- transport ---- */

int virtio_find(uint32_t device_id, unsigned nth, struct virtio_dev *out)
{
    unsigned seen = 0, slots = 0;
    for (unsigned i = 0; i < VIRTIO_MMIO_MAX_SLOTS; i++) {
        uint64_t base = VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_SLOT;
        if (mmio_read32(base + VMMIO_MAGIC) != VIRTIO_MAGIC)
            break;
        slots++;
        uint32_t version = mmio_read32(base + VMMIO_VERSION);
        uint32_t id = mmio_read32(base + VMMIO_DEVICE_ID);
        if (version != 2) {
            kprintf("TESTGUEST: FAIL virtio slot %u: version %u (want 2)\n", i, version);
            return -1;
        }
        if (id == device_id && seen++ == nth) {
            *out = (struct virtio_dev){ .base = base, .slot = i, .device_id = id };
            kprintf("TESTGUEST: virtio slot %u at 0x%lx device id %u\n", i, base, id);
            return 0;
        }
    }
    kprintf("TESTGUEST: FAIL virtio: no device id %u (instance %u) in %u slots\n", device_id, nth, slots);
    return -1;
}

int virtio_init(struct virtio_dev *d, uint64_t wanted)
{
    vreg_write(d, VMMIO_STATUS, 0);
    if (vreg_read(d, VMMIO_STATUS) != 0) {
        kprintf("TESTGUEST: FAIL virtio slot %u: status 0x%x after reset\n", d->slot, vreg_read(d, VMMIO_STATUS));
        return -1;
    }
    vreg_write(d, VMMIO_STATUS, VSTATUS_ACKNOWLEDGE);
    vreg_write(d, VMMIO_STATUS, VSTATUS_ACKNOWLEDGE | VSTATUS_DRIVER);
    vreg_write(d, VMMIO_DEVICE_FEATURES_SEL, 0);
    uint64_t offered = vreg_read(d, VMMIO_DEVICE_FEATURES);
    vreg_write(d, VMMIO_DEVICE_FEATURES_SEL, 1);
    offered |= (uint64_t)vreg_read(d, VMMIO_DEVICE_FEATURES) << 32;
    if (!(offered & VIRTIO_F_VERSION_1)) {
        kprintf("TESTGUEST: FAIL virtio slot %u: VERSION_1 not offered (features 0x%lx)\n", d->slot, offered);
        return -1;
    }
    d->features = (wanted & offered) | VIRTIO_F_VERSION_1;
    vreg_write(d, VMMIO_DRIVER_FEATURES_SEL, 0);
    vreg_write(d, VMMIO_DRIVER_FEATURES, (uint32_t)d->features);
    vreg_write(d, VMMIO_DRIVER_FEATURES_SEL, 1);
    vreg_write(d, VMMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
    vreg_write(d, VMMIO_STATUS, VSTATUS_ACKNOWLEDGE | VSTATUS_DRIVER | VSTATUS_FEATURES_OK);
    uint32_t st = vreg_read(d, VMMIO_STATUS);
    if (!(st & VSTATUS_FEATURES_OK)) {
        kprintf("TESTGUEST: FAIL virtio slot %u: FEATURES_OK not accepted (status 0x%x, features 0x%lx)\n",
                d->slot, st, d->features);
        return -1;
    }
    kprintf("TESTGUEST: virtio slot %u features offered 0x%lx negotiated 0x%lx\n", d->slot, offered, d->features);
    return 0;
}

int virtq_setup(struct virtio_dev *d, struct virtq *q, uint16_t index, uint16_t max_size)
{
    vreg_write(d, VMMIO_QUEUE_SEL, index);
    uint32_t max = vreg_read(d, VMMIO_QUEUE_NUM_MAX);
    if (max == 0 || vreg_read(d, VMMIO_QUEUE_READY) != 0) {
        kprintf("TESTGUEST: FAIL virtio slot %u queue %u: QueueNumMax %u, QueueReady %u\n", d->slot, index,
                max, vreg_read(d, VMMIO_QUEUE_READY));
        return -1;
    }
    uint32_t size = max < max_size ? max : max_size;
    if (size > VIRTQ_MAX_SIZE)
        size = VIRTQ_MAX_SIZE;
    while (size & (size - 1))          /* split rings: a power of 2 */
        size &= size - 1;
    *q = (struct virtq){ .index = index, .size = (uint16_t)size };
    q->desc = dma_alloc(16ul * size);
    q->avail = dma_alloc(6 + 2ul * size);
    q->used = dma_alloc(6 + 8ul * size);
    if (!q->desc || !q->avail || !q->used)
        return -1;
    vreg_write(d, VMMIO_QUEUE_NUM, size);
    uint64_t a[3] = { (uint64_t)q->desc, (uint64_t)q->avail, (uint64_t)q->used };
    static const uint32_t regs[3] = { VMMIO_QUEUE_DESC, VMMIO_QUEUE_DRIVER, VMMIO_QUEUE_DEVICE };
    for (int i = 0; i < 3; i++) {
        vreg_write(d, regs[i], (uint32_t)a[i]);
        vreg_write(d, regs[i] + 4, (uint32_t)(a[i] >> 32));
    }
    vreg_write(d, VMMIO_QUEUE_READY, 1);
    if (vreg_read(d, VMMIO_QUEUE_READY) != 1) {
        kprintf("TESTGUEST: FAIL virtio slot %u queue %u: QueueReady did not stick\n", d->slot, index);
        return -1;
    }
    return 0;
}

int virtio_driver_ok(struct virtio_dev *d)
{
    vreg_write(d, VMMIO_STATUS, VSTATUS_ACKNOWLEDGE | VSTATUS_DRIVER | VSTATUS_FEATURES_OK | VSTATUS_DRIVER_OK);
    uint32_t st = vreg_read(d, VMMIO_STATUS);
    if ((st & (VSTATUS_NEEDS_RESET | VSTATUS_FAILED)) || !(st & VSTATUS_DRIVER_OK)) {
        kprintf("TESTGUEST: FAIL virtio slot %u: status 0x%x after DRIVER_OK\n", d->slot, st);
        return -1;
    }
    return 0;
}

uint32_t virtio_config_read32(const struct virtio_dev *d, uint32_t off) { return vreg_read(d, VMMIO_CONFIG + off); }

uint64_t virtio_config_read64(const struct virtio_dev *d, uint32_t off)
{
    for (;;) {
        uint32_t gen = vreg_read(d, VMMIO_CONFIG_GENERATION);
        uint64_t v = vreg_read(d, VMMIO_CONFIG + off) | (uint64_t)vreg_read(d, VMMIO_CONFIG + off + 4) << 32;
        if (vreg_read(d, VMMIO_CONFIG_GENERATION) == gen)
            return v;
    }
}

/* ---- split virtqueue ---- */

int virtq_add(struct virtq *q, const struct vbuf *b, unsigned n)
{
    uint16_t head = q->next_desc;
    for (unsigned i = 0; i < n; i++) {
        uint16_t id = (uint16_t)((head + i) % q->size);
        q->desc[id].addr = b[i].addr;
        q->desc[id].len = b[i].len;
        q->desc[id].flags = (uint16_t)((b[i].device_writes ? VIRTQ_DESC_F_WRITE : 0) |
                                       (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
        q->desc[id].next = (uint16_t)((id + 1) % q->size);
    }
    q->next_desc = (uint16_t)((head + n) % q->size);
    virtq_repost(q, head);
    return head;
}

void virtq_repost(struct virtq *q, uint16_t head)
{
    q->avail->ring[q->avail_idx % q->size] = head;
    mb();                                   /* descriptors and ring entry before idx */
    q->avail->idx = ++q->avail_idx;
    mb();
}

void virtq_kick(const struct virtio_dev *d, const struct virtq *q) { vreg_write(d, VMMIO_QUEUE_NOTIFY, q->index); }

int virtq_poll(struct virtq *q, uint64_t timeout_ms, uint32_t *id, uint32_t *len)
{
    uint64_t end = rdtsc() + ms_to_cycles(timeout_ms);
    while (q->used->idx == q->last_used) {
        if (rdtsc() > end)
            return 0;
        cpu_relax();
    }
    mb();                                   /* idx before the entry it covers */
    volatile struct virtq_used_elem *e = &q->used->ring[q->last_used % q->size];
    *id = e->id;
    *len = e->len;
    q->last_used++;
    return 1;
}

int virtio_check_ack_irq(const struct virtio_dev *d, const char *what)
{
    uint64_t end = rdtsc() + ms_to_cycles(1000);
    uint32_t isr;
    while (!((isr = vreg_read(d, VMMIO_INTERRUPT_STATUS)) & 1)) {
        if (rdtsc() > end) {
            kprintf("TESTGUEST: FAIL virtio slot %u %s: used buffer but InterruptStatus 0x%x\n", d->slot, what, isr);
            return -1;
        }
        cpu_relax();
    }
    vreg_write(d, VMMIO_INTERRUPT_ACK, isr & 1);
    return 0;
}

int virtq_transfer(struct virtio_dev *d, struct virtq *q, const struct vbuf *b, unsigned n,
                   uint32_t *used_len, const char *what)
{
    int head = virtq_add(q, b, n);
    virtq_kick(d, q);
    uint32_t id, len;
    if (!virtq_poll(q, 5000, &id, &len)) {
        kprintf("TESTGUEST: FAIL virtio slot %u %s: no completion in 5 s (status 0x%x, used idx %u, avail idx %u)\n",
                d->slot, what, vreg_read(d, VMMIO_STATUS), q->used->idx, q->avail_idx);
        return -1;
    }
    if (id != (uint32_t)head) {
        kprintf("TESTGUEST: FAIL virtio slot %u %s: used id %u, expected head %d\n", d->slot, what, id, head);
        return -1;
    }
    if (used_len)
        *used_len = len;
    return virtio_check_ack_irq(d, what);
}
