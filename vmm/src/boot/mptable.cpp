// MP table builder, modelled on Firecracker's arch/x86_64/mptable.rs and kvmtool's
// x86/mptable.c. The tables are serialised field by field (little endian) rather
// than through packed structs, so the layout does not depend on compiler packing.
#include "vmm/boot/mptable.h"

#include <string_view>
#include <vector>

#include "vmm/boot/boot_layout.h"

namespace vmm::boot {
namespace {

// MP spec 1.4 constants.
constexpr uint8_t kSpecRev = 4;
constexpr uint8_t kEntryProcessor = 0;
constexpr uint8_t kEntryBus = 1;
constexpr uint8_t kEntryIoapic = 2;
constexpr uint8_t kEntryIoInt = 3;
constexpr uint8_t kEntryLocalInt = 4;
constexpr uint8_t kCpuEnabled = 0x1;
constexpr uint8_t kCpuBsp = 0x2;
constexpr uint8_t kLapicVersion = 0x14;  // integrated APIC, as KVM's LAPIC reports
constexpr uint8_t kIoapicVersion = 0x11;  // 82093AA, what KVM's in-kernel IOAPIC models
constexpr uint8_t kIoapicUsable = 0x1;
// CPU signature (family 6) and feature flags (FPU | APIC): the values FC and
// kvmtool put here; Linux only uses them for printing.
constexpr uint32_t kCpuSignature = 0x600;
constexpr uint32_t kCpuFeatures = 0x201;
constexpr uint8_t kIntTypeInt = 0;
constexpr uint8_t kIntTypeNmi = 1;
constexpr uint8_t kIntTypeExtInt = 3;
constexpr uint16_t kIrqFlagsConforming = 0;  // polarity/trigger conform to the bus (ISA: edge, high)
constexpr uint16_t kIrqFlagsLevelHigh = 0x1 | (0x3 << 2);  // active high, level triggered
constexpr uint8_t kAllLapics = 0xff;
constexpr unsigned kMaxCpus = 254;  // APIC ids 0..253, IOAPIC takes num_cpus, 0xff is broadcast
constexpr uint64_t kMptableLimit = 0xa0000;  // end of base memory

class ByteWriter {
public:
    void u8(uint8_t v) { m_bytes.push_back(v); }
    void u16(uint16_t v) { for (int i = 0; i < 2; ++i) u8(static_cast<uint8_t>(v >> (8 * i))); }
    void u32(uint32_t v) { for (int i = 0; i < 4; ++i) u8(static_cast<uint8_t>(v >> (8 * i))); }
    void text(std::string_view s) { for (char c : s) u8(static_cast<uint8_t>(c)); }
    void patch_u16(size_t at, uint16_t v) {
        m_bytes[at] = static_cast<uint8_t>(v);
        m_bytes[at + 1] = static_cast<uint8_t>(v >> 8);
    }
    // Sets byte `at` so that bytes [from, to) sum to zero mod 256.
    void fix_checksum(size_t from, size_t to, size_t at) {
        m_bytes[at] = 0;
        uint8_t sum = 0;
        for (size_t i = from; i < to; ++i) sum = static_cast<uint8_t>(sum + m_bytes[i]);
        m_bytes[at] = static_cast<uint8_t>(-sum);
    }
    size_t size() const { return m_bytes.size(); }
    const std::vector<uint8_t>& bytes() const { return m_bytes; }

private:
    std::vector<uint8_t> m_bytes;
};

void write_floating_pointer(ByteWriter& w, uint32_t config_addr) {
    w.text("_MP_");
    w.u32(config_addr);
    w.u8(1);  // length in 16-byte paragraphs
    w.u8(kSpecRev);
    w.u8(0);  // checksum, fixed below
    // Feature byte 1 = 0: a configuration table is present (no default config).
    // Feature byte 2 = 0: no IMCR, i.e. virtual-wire mode, which matches LINT0 = ExtINT.
    for (int i = 0; i < 5; ++i) w.u8(0);
    w.fix_checksum(0, kMpfIntelSize, 10);
}

void write_entries(ByteWriter& w, unsigned num_cpus, std::span<const PciIrqLine> pci) {
    for (unsigned cpu = 0; cpu < num_cpus; ++cpu) {
        w.u8(kEntryProcessor);
        w.u8(static_cast<uint8_t>(cpu));  // APIC id = vCPU index, as the vCPU setup programs it
        w.u8(kLapicVersion);
        w.u8(static_cast<uint8_t>(kCpuEnabled | (cpu == 0 ? kCpuBsp : 0)));
        w.u32(kCpuSignature);
        w.u32(kCpuFeatures);
        w.u32(0);
        w.u32(0);
    }
    const uint8_t isa_bus = pci.empty() ? 0 : 1;
    if (!pci.empty()) {
        w.u8(kEntryBus);
        w.u8(0);  // bus id = PCI bus number
        w.text("PCI   ");
    }
    w.u8(kEntryBus);
    w.u8(isa_bus);
    w.text("ISA   ");
    const auto ioapic_id = static_cast<uint8_t>(num_cpus);  // first id after the LAPICs
    w.u8(kEntryIoapic);
    w.u8(ioapic_id);
    w.u8(kIoapicVersion);
    w.u8(kIoapicUsable);
    w.u32(kMpIoapicAddr);
    // Identity routing ISA IRQ i -> IOAPIC pin i, as KVM's default GSI routing does.
    for (unsigned irq = 0; irq < kMpIsaIrqs; ++irq) {
        w.u8(kEntryIoInt);
        w.u8(kIntTypeInt);
        w.u16(kIrqFlagsConforming);
        w.u8(isa_bus);
        w.u8(static_cast<uint8_t>(irq));
        w.u8(ioapic_id);
        w.u8(static_cast<uint8_t>(irq));
    }
    for (const PciIrqLine& line : pci) {
        w.u8(kEntryIoInt);
        w.u8(kIntTypeInt);
        w.u16(kIrqFlagsLevelHigh);
        w.u8(0);  // source bus: PCI 0
        w.u8(static_cast<uint8_t>((line.slot & 0x1f) << 2 | ((line.pin - 1) & 3)));
        w.u8(ioapic_id);
        w.u8(line.gsi);
    }
    // LINT0 = ExtINT (the 8259 through virtual wire), LINT1 = NMI on every LAPIC;
    // configure_lapic_lint() programs the LAPICs the same way.
    const uint8_t lints[2] = {kIntTypeExtInt, kIntTypeNmi};
    for (uint8_t lint = 0; lint < 2; ++lint) {
        w.u8(kEntryLocalInt);
        w.u8(lints[lint]);
        w.u16(kIrqFlagsConforming);
        w.u8(0);  // source bus
        w.u8(0);  // source bus irq
        w.u8(kAllLapics);
        w.u8(lint);
    }
}

void write_config_table(ByteWriter& w, unsigned num_cpus, std::span<const PciIrqLine> pci) {
    const size_t start = w.size();
    w.text("PCMP");
    w.u16(0);  // base table length, patched below
    w.u8(kSpecRev);
    w.u8(0);  // checksum, fixed below
    w.text("VMM     ");       // OEM id, 8 chars
    w.text("VMM-MPTABLE ");   // product id, 12 chars
    w.u32(0);                 // no OEM table
    w.u16(0);                 // OEM table size
    const auto entry_count =
        static_cast<uint16_t>(num_cpus + 2 + kMpIsaIrqs + 2 + (pci.empty() ? 0 : 1 + pci.size()));
    w.u16(entry_count);
    w.u32(kMpLapicAddr);
    w.u32(0);  // extended table length/checksum: no extended entries
    write_entries(w, num_cpus, pci);
    const size_t length = w.size() - start;
    w.patch_u16(start + 4, static_cast<uint16_t>(length));
    w.fix_checksum(start, w.size(), start + 7);
}

}  // namespace

Result<void> write_mptable(const memory::GuestMemory& mem, unsigned num_cpus, std::span<const PciIrqLine> pci) {
    if (num_cpus == 0 || num_cpus > kMaxCpus) {
        return Error::msg("mptable: {} vCPUs out of range 1..{}", num_cpus, kMaxCpus);
    }
    // The floating pointer must stay in the last KiB of base memory, where Linux
    // scans for it, and the e820 map reserves only [kEbdaStart, 0xa0000) there.
    for (const PciIrqLine& line : pci) {
        if (line.slot == 0 || line.slot > 31 || line.pin == 0 || line.pin > 4 || line.gsi >= 24)
            return Error::msg("mptable: PCI slot {} INT{} -> IOAPIC pin {} is invalid", line.slot,
                              static_cast<char>('A' + line.pin - 1), line.gsi);
    }
    const uint64_t size = mptable_size(num_cpus, pci.size());
    if (kMptableAddr + size > kMptableLimit) {
        return Error::msg("mptable: {} vCPUs and {} PCI interrupt lines need {} bytes, more than the {} below 0xa0000",
                          num_cpus, pci.size(), size, kMptableLimit - kMptableAddr);
    }
    ByteWriter w;
    write_floating_pointer(w, static_cast<uint32_t>(kMptableAddr + kMpfIntelSize));
    write_config_table(w, num_cpus, pci);
    auto bytes = std::as_bytes(std::span(w.bytes()));
    VMM_TRY_CTX(mem.write(memory::GuestAddress(kMptableAddr), bytes), "writing mptable");
    return ok();
}

}  // namespace vmm::boot
