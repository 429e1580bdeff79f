/* testguest.mode=pci: the guest side of the VFIO end-to-end test (tests/kvm/vfio_vm_test.cpp).
 * Through ECAM only (the PCI window and ECAM lie inside the identity map, ports
 * 0xCF8.. outside the TSS I/O bitmap): find the host bridge and the assigned
 * function, size and relocate its BARs, enable decoding, write through the BAR
 * that is a memory slot, program the trapped MSI-X table and enable MSI-X. The
 * host checks each stage and releases the guest through a mailbox in RAM. */
#include "guest.h"

#define ECAM_BASE 0xe0000000ull
#define PCI_MAILBOX_ADDR 0x1f1000ull  /* the host writes the stage it finished */
#define BAR0_NEW 0xd0100000ull        /* where the guest moves the 64-bit BAR0 */
#define LAPIC_IRR 0xfee00200ull       /* 8 x 32 bits, 16 bytes apart */

static volatile uint32_t *cfg32(unsigned slot, unsigned off)
{
    return (volatile uint32_t *)(ECAM_BASE + ((uint64_t)slot << 15) + off);
}
static uint32_t cfg_read(unsigned slot, unsigned off) { return *cfg32(slot, off & ~3u); }
static void cfg_write(unsigned slot, unsigned off, uint32_t v) { *cfg32(slot, off & ~3u) = v; }
static void cfg_write16(unsigned slot, unsigned off, uint16_t v)
{
    *(volatile uint16_t *)(ECAM_BASE + ((uint64_t)slot << 15) + off) = v;
}

static int wait_stage(uint32_t stage)
{
    volatile uint32_t *mailbox = (volatile uint32_t *)PCI_MAILBOX_ADDR;
    for (uint64_t spins = 0; spins < 4000000000ull; ++spins) {
        if (*mailbox >= stage)
            return 1;
        cpu_relax();
    }
    kprintf("TESTGUEST: FAIL pci: the host never finished stage %u\n", stage);
    return 0;
}

/* The guest runs with interrupts off, so an injected MSI stays in the LAPIC's IRR. */
static unsigned irr_bit(unsigned vector)
{
    return (*(volatile uint32_t *)(LAPIC_IRR + 0x10 * (vector / 32)) >> (vector % 32)) & 1;
}

static unsigned wait_irr(unsigned vector)
{
    for (uint64_t spins = 0; spins < 20000 && !irr_bit(vector); ++spins)  /* each read exits */
        cpu_relax();
    return irr_bit(vector);
}

static unsigned find_cap(unsigned slot, uint8_t id)
{
    unsigned off = cfg_read(slot, 0x34) & 0xfc;
    for (int guard = 0; off >= 0x40 && guard < 48; ++guard) {
        uint32_t head = cfg_read(slot, off);
        if ((head & 0xff) == id)
            return off;
        off = (head >> 8) & 0xfc;
    }
    return 0;
}

static void run_pci(void)
{
    uint32_t bridge = cfg_read(0, 0);
    if (bridge != 0x00081b36u || (cfg_read(0, 8) >> 16) != 0x0600u) {
        kprintf("TESTGUEST: FAIL pci: no host bridge at 00:00.0 (id %08x)\n", bridge);
        return;
    }
    unsigned slot = 0;
    for (unsigned s = 1; s < 32 && !slot; ++s)
        if ((cfg_read(s, 0) & 0xffff) != 0xffff)
            slot = s;
    if (!slot) {
        kprintf("TESTGUEST: FAIL pci: no function on bus 0\n");
        return;
    }
    uint32_t id = cfg_read(slot, 0);
    uint64_t bar0 = (cfg_read(slot, 0x10) & ~0xfull) | ((uint64_t)cfg_read(slot, 0x14) << 32);
    uint32_t bar2 = cfg_read(slot, 0x18) & ~0xfu;
    kprintf("PCI: function %04x:%04x at 00:%02x.0 bar0 %lx bar2 %x\n", id & 0xffff, id >> 16, slot, bar0, bar2);

    /* Sizing as an OS does: all-ones, read the mask, restore. */
    cfg_write(slot, 0x18, 0xffffffffu);
    uint32_t mask = cfg_read(slot, 0x18);
    cfg_write(slot, 0x18, bar2);
    uint32_t size2 = ~(mask & ~0xfu) + 1;
    kprintf("PCI: bar2 size %x restored %x\n", size2, cfg_read(slot, 0x18) & ~0xfu);

    /* Move the 64-bit BAR0 below 4 GiB (inside the identity map), then decode. */
    cfg_write(slot, 0x10, (uint32_t)BAR0_NEW);
    cfg_write(slot, 0x14, 0);
    cfg_write16(slot, 0x04, 0x0006);  /* memory space + bus master */
    volatile uint32_t *bar0_mem = (volatile uint32_t *)(BAR0_NEW + 0x100);
    *bar0_mem = 0xc0ffee01u;
    kprintf("PCI: bar0 moved to %lx, wrote %x read %x\n", (uint64_t)BAR0_NEW, 0xc0ffee01u, *bar0_mem);

    /* A LAPIC left software-disabled (SVR bit 8, its reset state) drops fixed
     * interrupts; enabled, they wait in the IRR since this guest runs with IF=0. */
    *(volatile uint32_t *)0xfee000f0ull = 0x1ff;

    /* MSI-X table in BAR2 (trapped): vector 0 live, vector 1 masked. */
    volatile uint32_t *table = (volatile uint32_t *)(uint64_t)bar2;
    table[0] = 0xfee00000u; table[1] = 0; table[2] = 0x45; table[3] = 0;
    table[4] = 0xfee00000u; table[5] = 0; table[6] = 0x46; table[7] = 1;
    unsigned msix = find_cap(slot, 0x11);
    if (!msix) {
        kprintf("TESTGUEST: FAIL pci: no MSI-X capability\n");
        return;
    }
    uint16_t control = (uint16_t)(cfg_read(slot, msix) >> 16);
    cfg_write16(slot, msix + 2, (uint16_t)(control | 0x8000u));
    kprintf("PCI: msix cap %x vectors %u enabled %u entry0 data %x\n", msix, (control & 0x7ffu) + 1,
            (cfg_read(slot, msix) >> 31) & 1, table[2]);
    kprintf("PCI: STAGE 1\n");
    if (!wait_stage(1))
        return;

    /* The host signalled vector 0 (live) and vector 1 (masked) meanwhile. */
    unsigned v45 = irr_bit(0x45), v46 = irr_bit(0x46);
    table[7] = 0;  /* unmask vector 1: the signal that arrived while masked is delivered now */
    kprintf("PCI: irr 45=%u 46=%u, after unmask 46=%u\n", v45, v46, wait_irr(0x46));
    kprintf("PCI: STAGE 2\n");
    if (!wait_stage(2))
        return;

    cfg_write16(slot, msix + 2, (uint16_t)(control & ~0x8000u));
    cfg_write16(slot, 0x04, 0);
    kprintf("PCI: msix enabled %u after disable\n", (cfg_read(slot, msix) >> 31) & 1);
    kprintf("PCI: STAGE 3\n");
    if (!wait_stage(3))
        return;
    kprintf("TESTGUEST: PASS pci\n");
}

int run_pci_mode(const char *name)
{
    if (!str_starts(name, "pci") || name[3] != '\0')
        return 0;
    run_pci();
    return 1;
}
