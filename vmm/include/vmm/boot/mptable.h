// Intel MultiProcessor Specification 1.4 tables for guests that still find their
// CPUs and IOAPIC this way (CONFIG_X86_MPPARSE); ACPI-only guests ignore them.
#pragma once

#include <cstdint>
#include <span>

#include "common/result.h"
#include "memory/guest_memory.h"
#include "vmm/boot/boot_layout.h"

namespace vmm::boot {

// Sizes of the MP structures (MP spec 1.4, chapter 4); the layout is fixed by the
// spec, so these are part of the contract tests parse against.
inline constexpr uint64_t kMpfIntelSize = 16;    // floating pointer structure
inline constexpr uint64_t kMpcTableSize = 44;    // configuration table header
inline constexpr uint64_t kMpcCpuSize = 20;      // processor entry
inline constexpr uint64_t kMpcSmallEntry = 8;    // bus, IOAPIC, I/O and local interrupt entries
inline constexpr unsigned kMpIsaIrqs = 16;       // ISA IRQs 0..15 routed to IOAPIC pins 0..15
inline constexpr uint32_t kMpLapicAddr = 0xfee00000;
inline constexpr uint32_t kMpIoapicAddr = 0xfec00000;

// A PCI function's INTx pin on bus 0 and the IOAPIC pin (GSI) it is wired to:
// an I/O interrupt entry, level-triggered and active-high, so that Linux finds the
// routing of a passed-through function without ACPI.
struct PciIrqLine {
    uint8_t slot = 0;  // 1..31
    uint8_t pin = 1;   // 1 = INTA .. 4 = INTD, as the Interrupt Pin register
    uint8_t gsi = 16;  // IOAPIC pin
};

// Bytes the floating pointer plus configuration table take for `num_cpus` and
// `pci_lines` PCI interrupt entries (a PCI bus entry comes with the first).
constexpr uint64_t mptable_size(unsigned num_cpus, size_t pci_lines = 0) {
    return kMpfIntelSize + kMpcTableSize + kMpcCpuSize * num_cpus +
           kMpcSmallEntry * (1 /*bus*/ + 1 /*ioapic*/ + kMpIsaIrqs + 2 /*lint0/1*/) +
           (pci_lines ? kMpcSmallEntry * (1 /*PCI bus*/ + pci_lines) : 0);
}

// The most vCPUs whose MP table fits in the last KiB below 640 KiB.
inline constexpr unsigned kMptableMaxCpus = [] {
    unsigned n = 1;
    while (mptable_size(n + 1) <= 0xa0000 - kMptableAddr) ++n;
    return n;
}();


// Writes the floating pointer at kMptableAddr and the configuration table right
// after it. Fails for num_cpus == 0, > 254 (the IOAPIC takes id num_cpus, 0xff is
// broadcast), or when the tables would not fit below 0xa0000 (more than 40 CPUs).
// With PCI lines, bus 0 is the PCI bus (Linux matches MP bus ids to PCI bus
// numbers) and the ISA bus takes id 1; without, the ISA bus is bus 0.
[[nodiscard]] Result<void> write_mptable(const memory::GuestMemory& mem, unsigned num_cpus,
                                         std::span<const PciIrqLine> pci_lines = {});

}  // namespace vmm::boot
