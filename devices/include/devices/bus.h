// An address space of devices (one for PIO, one for MMIO): sorted, non-overlapping
// ranges, each dispatching with a device-relative offset.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>

#include "common/result.h"
#include "devices/bus_device.h"

namespace vmm::devices {

struct BusRange {
    uint64_t base = 0;
    uint64_t size = 0;  // > 0
    bool operator<(const BusRange& other) const { return base < other.base; }
};

class Bus {
public:
    // Fails on size 0, wrap-around, or overlap with an existing range.
    [[nodiscard]] Result<void> insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t size);
    [[nodiscard]] Result<void> remove(uint64_t base);

    // False when no device covers the whole access [addr, addr+data.size()).
    bool read(uint64_t addr, std::span<std::byte> data) const;
    bool write(uint64_t addr, std::span<const std::byte> data) const;

private:
    // Device and offset for an access fully inside one range.
    std::pair<std::shared_ptr<BusDevice>, uint64_t> resolve(uint64_t addr, uint64_t len) const;

    mutable std::shared_mutex m_mutex;
    std::map<BusRange, std::shared_ptr<BusDevice>> m_devices;
};

}  // namespace vmm::devices
