// A PCI function as the host bridge sees it: configuration-space accesses that the
// bridge has already checked (size 1, 2 or 4, naturally aligned, inside 4 KiB), and
// a description of its BARs so the VM can route the programmed windows.
#pragma once

#include <cstdint>
#include <vector>

namespace vmm::devices::pci {

inline constexpr uint32_t kConfigSpaceSize = 4096;   // PCIe extended space (ECAM)
inline constexpr uint32_t kLegacyConfigSize = 256;   // reachable through 0xCF8/0xCFC
inline constexpr int kBarCount = 6;

enum class BarKind : uint8_t { Memory32, Memory64, Io };

struct BarInfo {
    uint8_t index = 0;         // 0..5; a 64-bit BAR also occupies index + 1
    BarKind kind = BarKind::Memory32;
    uint64_t size = 0;         // power of two
    bool prefetchable = false;
    uint64_t address = 0;      // what the guest programmed (0 until then)
};

class PciDevice {
public:
    virtual ~PciDevice() = default;
    // offset % size == 0, size in {1, 2, 4}, offset + size <= kConfigSpaceSize.
    virtual uint32_t config_read(uint16_t offset, uint8_t size) = 0;
    virtual void config_write(uint16_t offset, uint8_t size, uint32_t value) = 0;
    virtual std::vector<BarInfo> bars() const = 0;
};

}  // namespace vmm::devices::pci
