#include "devices/pci/pci_root.h"

#include <utility>

#include <cstring>

namespace vmm::devices::pci {

namespace {

// Red Hat / QEMU's PCIe host bridge IDs: Linux has no quirks for them.
constexpr uint16_t kBridgeVendor = 0x1b36;
constexpr uint16_t kBridgeDevice = 0x0008;
constexpr uint32_t kClassHostBridge = 0x060000;

constexpr uint32_t kConfigEnable = 1u << 31;

bool valid_access(uint16_t offset, size_t size, uint32_t limit) {
    return (size == 1 || size == 2 || size == 4) && offset % size == 0 && offset + size <= limit;
}

uint32_t load_le(std::span<const std::byte> data) {
    uint32_t v = 0;
    for (size_t i = 0; i < data.size() && i < 4; ++i) v |= std::to_integer<uint32_t>(data[i]) << (8 * i);
    return v;
}

void store_le(std::span<std::byte> data, uint64_t v) {
    for (size_t i = 0; i < data.size(); ++i) data[i] = std::byte(static_cast<uint8_t>(v >> (8 * (i % 8))));
}

}  // namespace

HostBridge::HostBridge() : m_config(kBridgeVendor, kBridgeDevice, kClassHostBridge) {
    // A host bridge decodes nothing itself; only the command bits stay writable.
    m_config.set_writable(kInterruptLine, 1, 0);
}

uint32_t HostBridge::config_read(uint16_t offset, uint8_t size) {
    std::lock_guard lock(m_mutex);
    return m_config.read(offset, size);
}

void HostBridge::config_write(uint16_t offset, uint8_t size, uint32_t value) {
    std::lock_guard lock(m_mutex);
    m_config.write(offset, size, value);
}

PciRoot::PciRoot() { m_slots[0] = std::make_shared<HostBridge>(); }

Result<uint8_t> PciRoot::attach(std::shared_ptr<PciDevice> device, std::optional<uint8_t> slot) {
    if (!device) return Error::msg("PCI attach: no device");
    std::lock_guard lock(m_mutex);
    if (slot) {
        if (*slot == 0 || *slot >= kSlotCount) return Error::msg("PCI slot {} outside 1..{}", *slot, kSlotCount - 1);
        if (m_slots[*slot]) return Error::msg("PCI slot {} is already taken", *slot);
        m_slots[*slot] = std::move(device);
        return *slot;
    }
    for (uint8_t s = 1; s < kSlotCount; ++s) {
        if (!m_slots[s]) {
            m_slots[s] = std::move(device);
            return s;
        }
    }
    return Error::msg("PCI bus 0 is full ({} slots)", kSlotCount - 1);
}

std::shared_ptr<PciDevice> PciRoot::device(uint8_t slot) const {
    std::lock_guard lock(m_mutex);
    return slot < kSlotCount ? m_slots[slot] : nullptr;
}

std::shared_ptr<PciDevice> PciRoot::target(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset,
                                           uint8_t size, uint32_t limit) const {
    if (bus != 0 || function != 0 || slot >= kSlotCount || !valid_access(offset, size, limit)) return nullptr;
    return device(slot);
}

uint32_t PciRoot::config_read(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset, uint8_t size,
                              uint32_t limit) const {
    auto dev = target(bus, slot, function, offset, size, limit);
    if (!dev) return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
    return dev->config_read(offset, size);
}

void PciRoot::config_write(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset, uint8_t size,
                           uint32_t value, uint32_t limit) {
    auto dev = target(bus, slot, function, offset, size, limit);
    if (!dev) return;
    dev->config_write(offset, size, value);
    constexpr uint16_t kBarsEnd = kBar0 + 4 * kBarCount;
    bool decode = (offset < kCommand + 2 && offset + size > kCommand) || (offset < kBarsEnd && offset + size > kBar0);
    if (decode && m_observer) m_observer(slot, *dev);
}

Result<std::shared_ptr<PciDevice>> PciRoot::detach(uint8_t slot) {
    std::lock_guard lock(m_mutex);
    if (slot == 0 || slot >= kSlotCount) return Error::msg("PCI slot {} outside 1..{}", slot, kSlotCount - 1);
    if (!m_slots[slot]) return Error::msg("PCI slot {} is empty", slot);
    return std::exchange(m_slots[slot], nullptr);
}

// 0xCF8 latches an address only on a 32-bit access (byte writes to 0xCF9 etc. are
// other chipset registers); 0xCFC + n reads byte n of the addressed dword.
void PciConfigIo::read(uint64_t offset, std::span<std::byte> data) {
    if (offset < 4) {
        store_le(data, offset == 0 && data.size() == 4 ? m_address.load() : 0xffffffffu);
        return;
    }
    uint32_t address = m_address.load();
    auto byte = static_cast<uint16_t>((address & 0xfc) + (offset - 4));
    if (!(address & kConfigEnable) || data.size() > 4) {
        store_le(data, ~0ull);
        return;
    }
    uint32_t v = m_root->config_read(static_cast<uint8_t>(address >> 16), (address >> 11) & 0x1f, (address >> 8) & 0x7,
                                     byte, static_cast<uint8_t>(data.size()), kLegacyConfigSize);
    store_le(data, v);
}

void PciConfigIo::write(uint64_t offset, std::span<const std::byte> data) {
    if (offset < 4) {
        if (offset == 0 && data.size() == 4) m_address.store(load_le(data));
        return;
    }
    uint32_t address = m_address.load();
    if (!(address & kConfigEnable) || data.size() > 4) return;
    auto byte = static_cast<uint16_t>((address & 0xfc) + (offset - 4));
    m_root->config_write(static_cast<uint8_t>(address >> 16), (address >> 11) & 0x1f, (address >> 8) & 0x7, byte,
                         static_cast<uint8_t>(data.size()), load_le(data), kLegacyConfigSize);
}

void PciEcam::read(uint64_t offset, std::span<std::byte> data) {
    if (data.size() > 4 || offset >= kEcamBusSize) {
        store_le(data, ~0ull);
        return;
    }
    uint32_t v = m_root->config_read(0, (offset >> 15) & 0x1f, (offset >> 12) & 0x7, offset & 0xfff,
                                     static_cast<uint8_t>(data.size()));
    store_le(data, v);
}

void PciEcam::write(uint64_t offset, std::span<const std::byte> data) {
    if (data.size() > 4 || offset >= kEcamBusSize) return;
    m_root->config_write(0, (offset >> 15) & 0x1f, (offset >> 12) & 0x7, offset & 0xfff,
                         static_cast<uint8_t>(data.size()), load_le(data));
}

}  // namespace vmm::devices::pci
