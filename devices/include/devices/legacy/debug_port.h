// The POST / boot-progress port 0x80 (like cloud-hypervisor's debug port):
// a patched guest writes 0x40 at kernel start and 0x41 when user space starts;
// each code is logged and recorded with its time since VMM start, so boot time
// can be measured. Reads return 0. Only the first byte of an access counts.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "devices/bus_device.h"

namespace vmm::devices {

class DebugPort final : public BusDevice {
public:
    static constexpr uint64_t kPort = 0x80;
    static constexpr uint64_t kSize = 1;
    // Records the first codes only: the guest decides how often it writes.
    static constexpr size_t kMaxRecorded = 256;

    explicit DebugPort(std::chrono::steady_clock::time_point start) : m_start(start) {}

    void read(uint64_t offset, std::span<std::byte> data) override;
    void write(uint64_t offset, std::span<const std::byte> data) override;

    // (code, milliseconds since `start`) in arrival order.
    std::vector<std::pair<uint8_t, double>> codes() const;
    // Codes written after the record was full.
    uint64_t dropped() const;

private:
    std::chrono::steady_clock::time_point m_start;
    mutable std::mutex m_mutex;
    std::vector<std::pair<uint8_t, double>> m_codes;
    uint64_t m_dropped = 0;
};

}  // namespace vmm::devices
