#include "devices/pci/config_space.h"

#include <bit>
#include <set>

namespace vmm::devices::pci {

namespace {
constexpr uint16_t kMaxCapabilities = 48;  // (256 - 64) / 4: more means a loop
}

std::vector<Capability> walk_capabilities(const std::function<uint8_t(uint16_t)>& read8) {
    std::vector<Capability> caps;
    std::set<uint16_t> seen;
    uint16_t ptr = read8(kCapabilityPointer) & 0xfc;
    while (ptr >= kFirstCapability && ptr < kLegacyConfigSize && caps.size() < kMaxCapabilities) {
        if (!seen.insert(ptr).second) break;
        caps.push_back({read8(ptr), ptr});
        ptr = read8(static_cast<uint16_t>(ptr + 1)) & 0xfc;
    }
    return caps;
}

uint32_t bar_type_bits(BarKind kind, bool prefetchable) {
    switch (kind) {
        case BarKind::Io: return 0x1;
        case BarKind::Memory64: return 0x4 | (prefetchable ? 0x8u : 0u);
        case BarKind::Memory32: return prefetchable ? 0x8u : 0u;
    }
    return 0;
}

ConfigSpace::ConfigSpace(uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision) {
    set_u16(kVendorId, vendor);
    set_u16(kDeviceId, device);
    set_u32(kClassRevision, (class_code << 8) | revision);
    set_writable(kCommand, 2, kCommandIo | kCommandMemory | kCommandBusMaster | kCommandIntxDisable);
    set_writable(kInterruptLine, 1, 0xff);
}

Result<void> ConfigSpace::add_bar(uint8_t index, BarKind kind, uint64_t size, bool prefetchable) {
    bool is64 = kind == BarKind::Memory64;
    if (index >= kBarCount || (is64 && index + 1 >= kBarCount))
        return Error::msg("BAR {} does not exist{}", index, is64 ? " (64-bit BARs need two slots)" : "");
    if (m_bar_used[index] || (is64 && m_bar_used[index + 1])) return Error::msg("BAR {} is already in use", index);
    if (!std::has_single_bit(size)) return Error::msg("BAR {} size {:#x} is not a power of two", index, size);
    if (kind == BarKind::Io && (size < 4 || size > 256)) return Error::msg("I/O BAR {} size {:#x} outside 4..256", index, size);
    if (kind != BarKind::Io && size < 16) return Error::msg("memory BAR {} size {:#x} below 16", index, size);
    if (kind == BarKind::Memory32 && size > (1ull << 31)) return Error::msg("32-bit BAR {} size {:#x} too large", index, size);
    m_bar_used[index] = true;
    m_bars[index] = {index, kind, size, prefetchable, 0};
    auto reg = static_cast<uint16_t>(kBar0 + 4 * index);
    uint64_t mask = ~(size - 1);
    set_u32(reg, bar_type_bits(kind, prefetchable));
    set_writable(reg, 4, static_cast<uint32_t>(mask) & (kind == BarKind::Io ? ~0x3u : ~0xfu));
    if (is64) {
        m_bar_used[index + 1] = true;
        set_writable(static_cast<uint16_t>(reg + 4), 4, static_cast<uint32_t>(mask >> 32));
    }
    return ok();
}

Result<uint16_t> ConfigSpace::add_capability(uint8_t id, std::span<const uint8_t> body,
                                             std::span<const uint8_t> writable) {
    uint16_t len = static_cast<uint16_t>((2 + body.size() + 3) & ~size_t{3});
    if (body.size() > kLegacyConfigSize || m_next_capability + len > kLegacyConfigSize)
        return Error::msg("no room for capability {:#x} ({} bytes)", id, body.size() + 2);
    if (!writable.empty() && writable.size() != body.size())
        return Error::msg("capability {:#x}: write mask size differs from body", id);
    uint16_t at = m_next_capability;
    m_bytes[at] = id;
    m_bytes[at + 1] = 0;
    for (size_t i = 0; i < body.size(); ++i) {
        m_bytes[at + 2 + i] = body[i];
        m_writable[at + 2 + i] = writable.empty() ? 0 : writable[i];
    }
    if (m_last_capability == 0) set_u8(kCapabilityPointer, static_cast<uint8_t>(at));
    else m_bytes[m_last_capability + 1] = static_cast<uint8_t>(at);
    set_u16(kStatus, static_cast<uint16_t>(get(kStatus, 2) | kStatusCapabilities));
    m_last_capability = at;
    m_next_capability = static_cast<uint16_t>(at + len);
    return at;
}

void ConfigSpace::set_u8(uint16_t offset, uint8_t v) {
    if (offset < kConfigSpaceSize) m_bytes[offset] = v;
}
void ConfigSpace::set_u16(uint16_t offset, uint16_t v) {
    set_u8(offset, static_cast<uint8_t>(v));
    set_u8(static_cast<uint16_t>(offset + 1), static_cast<uint8_t>(v >> 8));
}
void ConfigSpace::set_u32(uint16_t offset, uint32_t v) {
    set_u16(offset, static_cast<uint16_t>(v));
    set_u16(static_cast<uint16_t>(offset + 2), static_cast<uint16_t>(v >> 16));
}

uint32_t ConfigSpace::get(uint16_t offset, uint8_t size) const {
    uint32_t v = 0;
    for (uint8_t i = 0; i < size && i < 4; ++i)
        if (offset + i < kConfigSpaceSize) v |= uint32_t{m_bytes[offset + i]} << (8 * i);
    return v;
}

void ConfigSpace::set_writable(uint16_t offset, uint8_t size, uint32_t mask) {
    for (uint8_t i = 0; i < size && i < 4; ++i)
        if (offset + i < kConfigSpaceSize) m_writable[offset + i] = static_cast<uint8_t>(mask >> (8 * i));
}

void ConfigSpace::write(uint16_t offset, uint8_t size, uint32_t value) {
    for (uint8_t i = 0; i < size && i < 4; ++i) {
        if (offset + i >= kConfigSpaceSize) break;
        uint8_t mask = m_writable[offset + i];
        auto byte = static_cast<uint8_t>(value >> (8 * i));
        m_bytes[offset + i] = static_cast<uint8_t>((m_bytes[offset + i] & ~mask) | (byte & mask));
    }
}

uint64_t ConfigSpace::bar_address(uint8_t index) const {
    if (index >= kBarCount || m_bars[index].size == 0) return 0;
    auto reg = static_cast<uint16_t>(kBar0 + 4 * index);
    uint64_t low = get(reg, 4) & (m_bars[index].kind == BarKind::Io ? ~0x3u : ~0xfu);
    if (m_bars[index].kind == BarKind::Memory64) low |= uint64_t{get(static_cast<uint16_t>(reg + 4), 4)} << 32;
    return low;
}

std::vector<BarInfo> ConfigSpace::bars() const {
    std::vector<BarInfo> out;
    for (uint8_t i = 0; i < kBarCount; ++i) {
        if (m_bars[i].size == 0) continue;
        BarInfo b = m_bars[i];
        b.address = bar_address(i);
        out.push_back(b);
    }
    return out;
}

std::vector<Capability> ConfigSpace::capabilities() const {
    return walk_capabilities([this](uint16_t off) { return static_cast<uint8_t>(get(off, 1)); });
}

}  // namespace vmm::devices::pci
