// Test doubles shared by the device tests.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "devices/bus_device.h"

namespace vmm::devices::test {

// Counts edges instead of writing an irqfd.
class FakeInterruptLine final : public InterruptLine {
public:
    void trigger() override { ++m_count; }
    int count() const { return m_count.load(); }
    void reset() { m_count = 0; }

private:
    std::atomic<int> m_count{0};
};

// Byte-register helpers for the byte-wide legacy devices.
inline uint8_t read_byte(BusDevice& device, uint64_t offset) {
    std::byte b{0xee};
    device.read(offset, std::span<std::byte>(&b, 1));
    return std::to_integer<uint8_t>(b);
}

inline void write_byte(BusDevice& device, uint64_t offset, uint8_t value) {
    std::byte b{value};
    device.write(offset, std::span<const std::byte>(&b, 1));
}

}  // namespace vmm::devices::test
