#include "devices/bus.h"

#include <iterator>

namespace vmm::devices {

Result<void> Bus::insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t size) {
    if (!device) return Error::msg("bus insert at {:#x}: null device", base);
    if (size == 0) return Error::msg("bus insert at {:#x}: zero size", base);
    // The last covered address is base + size - 1; it must not wrap past 2^64.
    if (base + (size - 1) < base) {
        return Error::msg("bus insert at {:#x}: size {:#x} wraps the address space", base, size);
    }
    std::unique_lock lock(m_mutex);
    auto next = m_devices.lower_bound(BusRange{base, 0});
    // The range that starts at or after base must begin past our last byte.
    if (next != m_devices.end() && next->first.base - base < size) {
        return Error::msg("bus insert [{:#x}, +{:#x}) overlaps device at [{:#x}, +{:#x})", base, size,
                          next->first.base, next->first.size);
    }
    // The range that starts before base must end at or before base.
    if (next != m_devices.begin()) {
        const BusRange& prev = std::prev(next)->first;
        if (base - prev.base < prev.size) {
            return Error::msg("bus insert [{:#x}, +{:#x}) overlaps device at [{:#x}, +{:#x})", base,
                              size, prev.base, prev.size);
        }
    }
    m_devices.emplace(BusRange{base, size}, std::move(device));
    return ok();
}

Result<void> Bus::remove(uint64_t base) {
    std::unique_lock lock(m_mutex);
    auto it = m_devices.find(BusRange{base, 0});
    if (it == m_devices.end()) return Error::msg("bus remove: no device at {:#x}", base);
    m_devices.erase(it);
    return ok();
}

std::pair<std::shared_ptr<BusDevice>, uint64_t> Bus::resolve(uint64_t addr, uint64_t len) const {
    if (len == 0) return {nullptr, 0};
    std::shared_lock lock(m_mutex);
    auto it = m_devices.upper_bound(BusRange{addr, 0});
    if (it == m_devices.begin()) return {nullptr, 0};
    --it;
    const BusRange& range = it->first;
    const uint64_t offset = addr - range.base;  // addr >= base here
    // Written to avoid overflow: the access must end inside the range.
    if (offset >= range.size || len > range.size - offset) return {nullptr, 0};
    // The shared_ptr copy keeps the device alive after the lock is dropped, so a
    // concurrent remove() cannot free it under a running access.
    return {it->second, offset};
}

bool Bus::read(uint64_t addr, std::span<std::byte> data) const {
    auto [device, offset] = resolve(addr, data.size());
    if (!device) return false;
    device->read(offset, data);
    return true;
}

bool Bus::write(uint64_t addr, std::span<const std::byte> data) const {
    auto [device, offset] = resolve(addr, data.size());
    if (!device) return false;
    device->write(offset, data);
    return true;
}

}  // namespace vmm::devices
