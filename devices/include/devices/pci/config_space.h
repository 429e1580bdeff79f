// Emulated type-0 configuration space: per-byte write masks (so BAR sizing, the
// command register and read-only IDs all follow from the masks), BARs, and a
// capability list. Not thread-safe: the owning device locks around it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "common/result.h"
#include "devices/pci/pci_device.h"

namespace vmm::devices::pci {

// Standard header offsets and bits used by the emulation and by VFIO.
inline constexpr uint16_t kVendorId = 0x00;
inline constexpr uint16_t kDeviceId = 0x02;
inline constexpr uint16_t kCommand = 0x04;
inline constexpr uint16_t kStatus = 0x06;
inline constexpr uint16_t kClassRevision = 0x08;
inline constexpr uint16_t kHeaderType = 0x0e;
inline constexpr uint16_t kBar0 = 0x10;
inline constexpr uint16_t kSubsystemVendorId = 0x2c;
inline constexpr uint16_t kExpansionRom = 0x30;
inline constexpr uint16_t kCapabilityPointer = 0x34;
inline constexpr uint16_t kInterruptLine = 0x3c;
inline constexpr uint16_t kInterruptPin = 0x3d;
inline constexpr uint16_t kFirstCapability = 0x40;

inline constexpr uint16_t kCommandIo = 1u << 0;
inline constexpr uint16_t kCommandMemory = 1u << 1;
inline constexpr uint16_t kCommandBusMaster = 1u << 2;
inline constexpr uint16_t kCommandIntxDisable = 1u << 10;
inline constexpr uint16_t kStatusCapabilities = 1u << 4;

inline constexpr uint8_t kCapIdMsi = 0x05;
inline constexpr uint8_t kCapIdMsix = 0x11;

struct Capability {
    uint8_t id = 0;
    uint16_t offset = 0;
};

// Walks a capability list through `read8`, guarding against loops and pointers
// into the header (a device, or a hostile guest, may hand us any bytes).
std::vector<Capability> walk_capabilities(const std::function<uint8_t(uint16_t)>& read8);

// Encodes the low bits of a BAR register for its kind.
uint32_t bar_type_bits(BarKind kind, bool prefetchable);

class ConfigSpace {
public:
    // class_code: base class << 16 | subclass << 8 | prog-if.
    ConfigSpace(uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision = 0);

    // Size is a power of two: >= 16 for memory, >= 4 (and <= 256) for I/O. A 64-bit BAR
    // takes index and index + 1.
    [[nodiscard]] Result<void> add_bar(uint8_t index, BarKind kind, uint64_t size, bool prefetchable = false);
    // Appends a capability whose body (after id and next pointer) is `body`, with
    // `writable` the per-byte write masks of the body (empty: read-only). Returns its offset.
    [[nodiscard]] Result<uint16_t> add_capability(uint8_t id, std::span<const uint8_t> body,
                                                  std::span<const uint8_t> writable = {});

    // Raw accessors for device code: no masks.
    void set_u8(uint16_t offset, uint8_t v);
    void set_u16(uint16_t offset, uint16_t v);
    void set_u32(uint16_t offset, uint32_t v);
    uint32_t get(uint16_t offset, uint8_t size) const;
    void set_writable(uint16_t offset, uint8_t size, uint32_t mask);

    // Guest accesses, already checked by the bridge; writes go through the masks.
    uint32_t read(uint16_t offset, uint8_t size) const { return get(offset, size); }
    void write(uint16_t offset, uint8_t size, uint32_t value);

    std::vector<BarInfo> bars() const;
    uint64_t bar_address(uint8_t index) const;
    uint16_t command() const { return static_cast<uint16_t>(get(kCommand, 2)); }
    std::vector<Capability> capabilities() const;

private:
    std::array<uint8_t, kConfigSpaceSize> m_bytes{};
    std::array<uint8_t, kConfigSpaceSize> m_writable{};
    std::array<BarInfo, kBarCount> m_bars{};
    std::array<bool, kBarCount> m_bar_used{};   // includes the upper half of 64-bit BARs
    uint16_t m_next_capability = kFirstCapability;
    uint16_t m_last_capability = 0;
};

}  // namespace vmm::devices::pci
