/* Intel MultiProcessor Specification 1.4 table parsing (runs at CPL0 on the BSP,
 * before the drop: the CPU list is needed to start the APs).
 *
 * Everything read here comes from the VMM and is checked: signatures, both
 * checksums, lengths, entry types and bounds. Any problem prints a FAIL line and
 * leaves g.smp_setup_failed set, so the smp mode reports failure, never success. */
#include "guest.h"

struct mp_floating {
    char signature[4];          /* "_MP_" */
    uint32_t config_ptr;
    uint8_t length;             /* in 16-byte units */
    uint8_t spec_rev;
    uint8_t checksum;
    uint8_t feature[5];         /* feature[0] != 0: a default configuration, no table */
} __attribute__((packed));

struct mp_config {
    char signature[4];          /* "PCMP" */
    uint16_t base_length;
    uint8_t spec_rev;
    uint8_t checksum;
    char oem[8];
    char product[12];
    uint32_t oem_table_ptr;
    uint16_t oem_table_size;
    uint16_t entry_count;
    uint32_t lapic_addr;
    uint16_t ext_length;
    uint8_t ext_checksum;
    uint8_t reserved;
} __attribute__((packed));

struct mp_processor {
    uint8_t type;               /* 0 */
    uint8_t apic_id;
    uint8_t apic_version;
    uint8_t flags;              /* bit 0 enabled, bit 1 bootstrap processor */
    uint32_t signature, features;
    uint32_t reserved[2];
} __attribute__((packed));

static uint8_t byte_sum(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t s = 0;
    while (n--)
        s = (uint8_t)(s + *b++);
    return s;
}

static const struct mp_floating *find_floating(uint64_t base, uint64_t end)
{
    for (uint64_t a = base; a + sizeof(struct mp_floating) <= end; a += 16)
        if (!memcmp((const void *)a, "_MP_", 4))
            return (const struct mp_floating *)a;
    return 0;
}

static int fail(const char *what)
{
    kprintf("TESTGUEST: FAIL smp: MP table: %s\n", what);
    g.smp_setup_failed = 1;
    g.cpu_count = 0;            /* nothing to start or wait for */
    g.bsp_index = 0;
    return -1;
}

static int add_processor(const struct mp_processor *p)
{
    if (!(p->flags & 1))
        return 0;               /* disabled processor: not to be started */
    if (g.cpu_count >= MAX_CPUS)
        return fail("more enabled processors than the guest supports (16)");
    for (unsigned i = 0; i < g.cpu_count; i++)
        if (g.cpus[i].mp_apic_id == p->apic_id)
            return fail("duplicate APIC ID");
    struct cpu_info *c = &g.cpus[g.cpu_count];
    c->mp_apic_id = p->apic_id;
    c->is_bsp = (p->flags & 2) != 0;
    if (c->is_bsp)
        g.bsp_index = g.cpu_count;
    g.cpu_count++;
    return 0;
}

static int walk_entries(const struct mp_config *cfg)
{
    uint64_t pos = (uint64_t)cfg + sizeof(*cfg);
    uint64_t end = (uint64_t)cfg + cfg->base_length;
    unsigned bsps = 0;
    for (unsigned i = 0; i < cfg->entry_count; i++) {
        if (pos >= end)
            return fail("entries run past the table length");
        uint8_t type = *(const uint8_t *)pos;
        uint64_t size = type == 0 ? sizeof(struct mp_processor) : 8;
        if (type > 4)
            return fail("unknown entry type");
        if (pos + size > end)
            return fail("entry runs past the table length");
        if (type == 0) {
            const struct mp_processor *p = (const struct mp_processor *)pos;
            bsps += (p->flags & 3) == 3;
            if (add_processor(p))
                return -1;
        }
        pos += size;
    }
    if (g.cpu_count == 0)
        return fail("no enabled processor");
    if (bsps != 1)
        return fail("not exactly one enabled bootstrap processor");
    return 0;
}

int mptable_parse(void)
{
    const struct mp_floating *mpf = find_floating(0x9fc00, 0xa0000);
    if (!mpf)
        mpf = find_floating(0xf0000, 0x100000);   /* the spec's other place */
    if (!mpf)
        return fail("no _MP_ floating pointer in 0x9fc00-0x9ffff or 0xf0000-0xfffff");
    if (mpf->length == 0 || byte_sum(mpf, mpf->length * 16u) != 0)
        return fail("bad floating pointer checksum");
    if (mpf->feature[0] != 0 || mpf->config_ptr == 0)
        return fail("default configuration (no config table) is not supported");

    const struct mp_config *cfg = (const struct mp_config *)(uint64_t)mpf->config_ptr;
    if ((uint64_t)mpf->config_ptr + sizeof(*cfg) > g.mapped_limit)
        return fail("config table outside memory");
    if (memcmp(cfg->signature, "PCMP", 4))
        return fail("bad config table signature");
    if (cfg->base_length < sizeof(*cfg) ||
        (uint64_t)mpf->config_ptr + cfg->base_length + cfg->ext_length > g.mapped_limit)
        return fail("bad config table length");
    if (byte_sum(cfg, cfg->base_length) != 0)
        return fail("bad config table checksum");
    if (cfg->ext_length &&
        (uint8_t)(byte_sum((const uint8_t *)cfg + cfg->base_length, cfg->ext_length) +
                  cfg->ext_checksum) != 0)
        return fail("bad extended table checksum");
    return walk_entries(cfg);
}
