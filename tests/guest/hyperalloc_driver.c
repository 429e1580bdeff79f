/* HyperAlloc modes: the polled driver for the HyperAlloc device (hyperalloc_abi.h)
 * and the allocation wrapper that installs reclaimed frames before they are used.
 *
 * Install queues have one entry, so a request and its status cannot be a two-
 * descriptor chain: with VIRTIO_F_INDIRECT_DESC the one descriptor points to a
 * two-entry indirect table (request, then the device-writable le32 status); without
 * it the request goes alone and the guest learns nothing but "done". Installs do not
 * wait for interrupts (IF stays 0 and the avail ring asks for none); the guest spins
 * on the used index, as the artefact's guest does with interrupts off. */
#include "hyperalloc.h"

#define ISR_USED 1u
#define ISR_CONFIG 2u
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define IQ_BYTES 256u                    /* per install queue: request, status, table */
#define INSTALL_TIMEOUT_MS 5000
#define MAX_FAIL_LINES 20

static unsigned fail_lines;

/* Problems can repeat thousands of times: print the first few. */
static int may_print(void) { return __atomic_fetch_add(&fail_lines, 1, __ATOMIC_RELAXED) < MAX_FAIL_LINES; }

static unsigned count_install_queues(void)
{
    unsigned n = 0;
    for (; n < HA_MAX_INSTALL_QUEUES; n++) {
        vreg_write(&ha.dev, VMMIO_QUEUE_SEL, HA_QUEUE_INSTALL_FIRST + n);
        if (vreg_read(&ha.dev, VMMIO_QUEUE_NUM_MAX) == 0)
            break;
    }
    return n;
}

int ha_device_init(void)
{
    uint64_t want = (1ul << HA_F_AUTO_MODE_BIT) | (1ul << HA_F_SHRINK_PAGECACHE_BIT) | VIRTIO_F_INDIRECT_DESC;
    if (virtio_find(HA_VIRTIO_DEVICE_ID, 0, &ha.dev) < 0 || virtio_init(&ha.dev, want) < 0)
        return -1;
    ha.has_status = (ha.dev.features & VIRTIO_F_INDIRECT_DESC) != 0;
    if (virtq_setup(&ha.dev, &ha.info, HA_QUEUE_INFO, HA_INFO_QUEUE_SIZE) < 0 ||
        virtq_setup(&ha.dev, &ha.notify, HA_QUEUE_NOTIFY, HA_NOTIFY_QUEUE_SIZE) < 0)
        return -1;
    ha.install_queues = count_install_queues();
    if (ha.install_queues == 0) {
        kprintf("TESTGUEST: FAIL HA: the device has no install queue\n");
        return -1;
    }
    uint8_t *mem = dma_alloc((uint64_t)IQ_BYTES * ha.install_queues);
    ha.notify_buf = dma_alloc(HA_PAGE);
    if (!mem || !ha.notify_buf)
        return -1;
    for (unsigned i = 0; i < ha.install_queues; i++) {
        struct ha_install_queue *iq = &ha.iq[i];
        vreg_write(&ha.dev, VMMIO_QUEUE_SEL, HA_QUEUE_INSTALL_FIRST + i);
        uint32_t max = vreg_read(&ha.dev, VMMIO_QUEUE_NUM_MAX);
        if (max != HA_INSTALL_QUEUE_SIZE) {
            kprintf("TESTGUEST: FAIL HA: install queue %u has QueueNumMax %u (want %u)\n", i, max,
                    HA_INSTALL_QUEUE_SIZE);
            return -1;
        }
        if (virtq_setup(&ha.dev, &iq->q, (uint16_t)(HA_QUEUE_INSTALL_FIRST + i), HA_INSTALL_QUEUE_SIZE) < 0)
            return -1;
        iq->q.avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
        iq->req = (struct ha_install_request *)(mem + i * IQ_BYTES);
        iq->status = (volatile uint32_t *)(mem + i * IQ_BYTES + 64);
        iq->table = (volatile struct virtq_desc *)(mem + i * IQ_BYTES + 128);
    }
    if (virtio_driver_ok(&ha.dev) < 0)
        return -1;
    kprintf("HA: device slot %u features 0x%lx install queues %u status %s\n", ha.dev.slot, ha.dev.features,
            ha.install_queues, ha.has_status ? "yes (indirect)" : "no (no INDIRECT_DESC)");
    return 0;
}

/* Acks what InterruptStatus shows; returns it. */
static uint32_t ack_interrupts(void)
{
    uint32_t isr = vreg_read(&ha.dev, VMMIO_INTERRUPT_STATUS);
    if (isr & (ISR_USED | ISR_CONFIG))
        vreg_write(&ha.dev, VMMIO_INTERRUPT_ACK, isr & (ISR_USED | ISR_CONFIG));
    return isr;
}

/* One buffer on queue q, kick, wait for it (the device need not interrupt). */
static int send_one(struct virtq *q, uint64_t addr, uint32_t len, const char *what)
{
    struct vbuf b = { addr, len, 0 };
    int head = virtq_add(q, &b, 1);
    virtq_kick(&ha.dev, q);
    uint32_t id, used_len;
    if (!virtq_poll(q, INSTALL_TIMEOUT_MS, &id, &used_len)) {
        kprintf("TESTGUEST: FAIL HA: %s: no completion in 5 s (status 0x%x)\n", what,
                vreg_read(&ha.dev, VMMIO_STATUS));
        return -1;
    }
    if (id != (uint32_t)head) {
        kprintf("TESTGUEST: FAIL HA: %s: used id %u, expected %d\n", what, id, head);
        return -1;
    }
    return 0;
}

int ha_post_info(const void *buf, uint32_t len)
{
    static uint8_t *dma;
    if (!dma && !(dma = dma_alloc(HA_PAGE)))
        return -1;
    if (len > HA_PAGE) {
        kprintf("TESTGUEST: FAIL HA: info buffer of %u bytes is too large\n", len);
        return -1;
    }
    memcpy(dma, buf, len);
    return send_one(&ha.info, (uint64_t)dma, len, "info queue");
}

int ha_post_zones(void)
{
    struct ha_zone_record recs[HA_MAX_ZONES];
    for (unsigned i = 0; i < ha.nzones; i++)
        recs[i] = ha.zones[i].rec;
    if (ha_post_info(recs, (uint32_t)(ha.nzones * sizeof(recs[0]))) < 0)
        return -1;
    /* The device takes good records silently: an install in each zone must not
     * answer ERR_ZONE (frame 0 may be OK, or ERR_HARD if an initial target took it). */
    for (unsigned i = 0; ha.has_status && i < ha.nzones; i++) {
        int st = ha_install_raw(0, 0, ha.zones[i].type, 0);
        if (st != HA_INSTALL_OK && st != HA_INSTALL_ERR_HARD) {
            kprintf("TESTGUEST: FAIL HA: zone %u (type %u) not taken by the device: install status %d\n", i,
                    ha.zones[i].type, st);
            return -1;
        }
    }
    kprintf("HA: posted %u zone records\n", ha.nzones);
    return 0;
}

int ha_install_raw(unsigned queue, uint32_t node, uint32_t zone_type, uint64_t frame)
{
    struct ha_install_queue *iq = &ha.iq[queue % ha.install_queues];
    *iq->req = (struct ha_install_request){ .node = node, .zone_type = zone_type, .frame = frame };
    *iq->status = 0xffffffffu;
    if (ha.has_status) {
        iq->table[0] = (struct virtq_desc){ (uint64_t)iq->req, sizeof(*iq->req), VIRTQ_DESC_F_NEXT, 1 };
        iq->table[1] = (struct virtq_desc){ (uint64_t)iq->status, 4, VIRTQ_DESC_F_WRITE, 0 };
        iq->q.desc[0] = (struct virtq_desc){ (uint64_t)iq->table, 32, VIRTQ_DESC_F_INDIRECT, 0 };
    } else {
        iq->q.desc[0] = (struct virtq_desc){ (uint64_t)iq->req, sizeof(*iq->req), 0, 0 };
    }
    virtq_repost(&iq->q, 0);
    virtq_kick(&ha.dev, &iq->q);
    uint32_t id, len;
    if (!virtq_poll(&iq->q, INSTALL_TIMEOUT_MS, &id, &len)) {
        kprintf("TESTGUEST: FAIL HA: install queue %u zone %u frame %lu: no completion in 5 s\n",
                queue % ha.install_queues, zone_type, frame);
        return -1;
    }
    if (!ha.has_status)
        return HA_INSTALL_OK;
    if (len != 4 && may_print())
        kprintf("TESTGUEST: FAIL HA: install queue %u: used length %u (want 4)\n", queue % ha.install_queues, len);
    return (int)*iq->status;
}

int ha_alloc(struct ha_zone *z, unsigned cpu, unsigned order, uint64_t *pfn)
{
    struct ha_cpu_stats *st = &ha.cpu[cpu];
    struct llf_result r;
    int rc = llf_get(&z->llf, cpu, order, &r);
    if (rc == LLF_ENOMEM)
        return rc;                       /* counted by the caller: one per request */
    if (rc != LLF_OK) {
        if (may_print())
            kprintf("TESTGUEST: FAIL HA: llf_get(zone %u, order %u) = %d\n", z->type, order, rc);
        return rc;
    }
    __atomic_fetch_sub(z->free_pages, (int64_t)1 << order, __ATOMIC_RELAXED);
    st->allocs++;
    for (unsigned i = 0; r.reclaimed_mask >> i; i++) {
        if (!((r.reclaimed_mask >> i) & 1))
            continue;
        uint64_t child_frame = ((r.frame >> LLF_CHILD_ORDER) + i) << LLF_CHILD_ORDER;
        int status = ha_install_raw(cpu, 0, z->type, child_frame);
        st->installs++;
        if (status == HA_INSTALL_OK && !llf_is_reclaimed(&z->llf, child_frame))
            continue;
        st->install_errors++;
        if (may_print())
            kprintf("TESTGUEST: FAIL HA: install zone %u frame %lu: status %d, reclaimed bit %s\n", z->type,
                    child_frame, status, llf_is_reclaimed(&z->llf, child_frame) ? "still set" : "clear");
        if (status < 0)
            return LLF_EINVAL;           /* the queue is stuck: stop using it */
    }
    *pfn = z->llf.base_pfn + r.frame;
    return LLF_OK;
}

int ha_alloc_any(unsigned cpu, unsigned order, uint64_t seed, uint64_t *pfn)
{
    int rc = LLF_ENOMEM;
    for (unsigned i = 0; i < ha.nzones && rc == LLF_ENOMEM; i++)
        rc = ha_alloc(&ha.zones[(seed + i) % ha.nzones], cpu, order, pfn);
    if (rc == LLF_ENOMEM)
        ha.cpu[cpu].enomem++;
    return rc;
}

int ha_free(unsigned cpu, uint64_t pfn, unsigned order)
{
    struct ha_zone *z = ha_zone_of(pfn);
    int rc = z ? llf_put(&z->llf, cpu, pfn - z->llf.base_pfn, order) : LLF_EINVAL;
    if (rc != LLF_OK) {
        if (may_print())
            kprintf("TESTGUEST: FAIL HA: llf_put(pfn 0x%lx, order %u) = %d\n", pfn, order, rc);
        return -1;
    }
    __atomic_fetch_add(z->free_pages, (int64_t)1 << order, __ATOMIC_RELAXED);
    ha.cpu[cpu].frees++;
    return 0;
}

/* ---- the cache pool: what stands in for page cache ---- */

int ha_cache_fill(unsigned cpu, uint64_t mib)
{
    uint64_t pages = mib * (HA_MIB / HA_PAGE), list_pfn;
    unsigned order = 0;
    while (order < LLF_MAX_ORDER && (HA_PAGE << order) < pages * 8)
        order++;
    if (pages == 0)
        return 0;
    if ((HA_PAGE << order) < pages * 8 || ha_alloc_any(cpu, order, 0, &list_pfn) != LLF_OK) {
        kprintf("TESTGUEST: FAIL HA: cannot hold a cache of %lu MiB\n", mib);
        return -1;
    }
    ha.cache_pfns = (uint64_t *)(list_pfn * HA_PAGE);
    ha.cache_capacity = pages;
    for (uint64_t pfn; ha.cache_count < pages && ha_alloc_any(cpu, 0, ha.cache_count, &pfn) == LLF_OK;) {
        *(volatile uint64_t *)(pfn * HA_PAGE) = ha_pattern(pfn * HA_PAGE, 0);   /* cached "data" */
        ha.cache_pfns[ha.cache_count++] = pfn;
        __atomic_fetch_add(ha.file_pages, 1, __ATOMIC_RELAXED);
    }
    kprintf("HA: cache pool %lu pages\n", ha.cache_count);
    return 0;
}

/* The host asks for `want` pages of page cache back: drop what the pool has, write
 * back the remainder, tell the device (notify queue, value 0). */
static void cache_drop(unsigned cpu, uint32_t want)
{
    uint64_t dropped = 0;
    while (dropped < want && ha.cache_count > 0) {
        uint64_t pfn = ha.cache_pfns[--ha.cache_count];
        if (*(volatile uint64_t *)(pfn * HA_PAGE) != ha_pattern(pfn * HA_PAGE, 0) && may_print())
            kprintf("HA: MISMATCH cache page 0x%lx lost its data\n", pfn);
        if (ha_free(cpu, pfn, 0) < 0)
            break;
        dropped++;
    }
    __atomic_fetch_sub(ha.file_pages, (int64_t)dropped, __ATOMIC_RELAXED);
    ha.cache_dropped += dropped;
    ha.cache_requests++;
    vreg_write(&ha.dev, VMMIO_CONFIG, want - (uint32_t)dropped);
    *ha.notify_buf = HA_NOTIFY_PAGECACHE_DROPPED;
    if (send_one(&ha.notify, (uint64_t)ha.notify_buf, 4, "notify queue") == 0)
        kprintf("HA: pagecache shrink requested %u pages, dropped %lu, remainder %lu\n", want, dropped,
                want - dropped);
}

void ha_poll_device(unsigned cpu)
{
    uint32_t isr = ack_interrupts();
    if (!(isr & ISR_CONFIG))
        return;
    uint32_t want = virtio_config_read32(&ha.dev, 0);
    kprintf("HA: config change, shrink_pagecache %u pages\n", want);
    if (want && (ha.dev.features & (1ul << HA_F_SHRINK_PAGECACHE_BIT)))
        cache_drop(cpu, want);
}
