// A device reachable from a vCPU through port I/O or MMIO. Offsets are relative
// to the base at which the device was inserted into its Bus. Devices do their
// own locking: several vCPU threads and the event loop may call them at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace vmm::devices {

class BusDevice {
public:
    virtual ~BusDevice() = default;
    // Fill `data` (1, 2, 4 or 8 bytes). Unimplemented registers read as zero.
    virtual void read(uint64_t offset, std::span<std::byte> data) = 0;
    virtual void write(uint64_t offset, std::span<const std::byte> data) = 0;
};

// An interrupt line into the guest (an irqfd on a GSI, or a fake in tests).
// trigger() is an edge: the in-kernel PIC/IOAPIC latch it.
class InterruptLine {
public:
    virtual ~InterruptLine() = default;
    virtual void trigger() = 0;
};

}  // namespace vmm::devices
