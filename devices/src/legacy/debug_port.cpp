#include "devices/legacy/debug_port.h"

#include <algorithm>

#include "common/log.h"

namespace vmm::devices {

void DebugPort::read(uint64_t /*offset*/, std::span<std::byte> data) {
    std::fill(data.begin(), data.end(), std::byte{0});
}

void DebugPort::write(uint64_t /*offset*/, std::span<const std::byte> data) {
    if (data.empty()) return;
    const auto code = std::to_integer<uint8_t>(data[0]);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - m_start).count();
    bool recorded = false;
    {
        std::lock_guard lock(m_mutex);
        if (m_codes.size() < kMaxRecorded) {
            m_codes.emplace_back(code, ms);
            recorded = true;
        } else {
            ++m_dropped;
        }
    }
    // A guest looping on port 0x80 (some drivers use it as an I/O delay) must
    // not flood the log: only recorded codes are logged.
    if (recorded) log::info("boot progress 0x{:02x} at {:.3f} ms", code, ms);
}

std::vector<std::pair<uint8_t, double>> DebugPort::codes() const {
    std::lock_guard lock(m_mutex);
    return m_codes;
}

uint64_t DebugPort::dropped() const {
    std::lock_guard lock(m_mutex);
    return m_dropped;
}

}  // namespace vmm::devices
