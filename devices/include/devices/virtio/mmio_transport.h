// virtio-mmio version 2 (modern only, virtio 1.2 §4.2.2) as a BusDevice in a 4 KiB
// slot. Runs the status state machine, feature negotiation, queue registers,
// interrupt status/ack and config generation; calls the device for its config
// space and at DRIVER_OK/reset. The VMM registers one ioeventfd per queue at
// QueueNotify (offset 0x50, datamatch = queue index) and calls notify_queue() from
// its event loop, so queue notifications normally never reach write().
#pragma once

#include <memory>
#include <mutex>

#include "devices/bus_device.h"
#include "devices/virtio/virtio_device.h"

namespace vmm::devices::virtio {

inline constexpr uint64_t kMmioSlotSize = 0x1000;
inline constexpr uint64_t kMmioQueueNotifyOffset = 0x50;
inline constexpr uint64_t kMmioConfigOffset = 0x100;

class MmioTransport final : public BusDevice {
public:
    MmioTransport(std::shared_ptr<VirtioDevice> device, const memory::GuestMemory& memory,
                  std::shared_ptr<InterruptLine> irq);
    ~MmioTransport() override;  // out of line: State is defined in the .cpp
    MmioTransport(const MmioTransport&) = delete;
    MmioTransport& operator=(const MmioTransport&) = delete;

    void read(uint64_t offset, std::span<std::byte> data) override;
    void write(uint64_t offset, std::span<const std::byte> data) override;

    // From the event loop, when queue `index`'s ioeventfd fired.
    void notify_queue(uint16_t index);

    uint16_t num_queues() const;
    bool activated() const;
    uint32_t status() const;
    VirtioDevice& device() { return *m_device; }

private:
    class Interrupt;  // the VirtioInterrupt handed to the device at DRIVER_OK
    struct State;     // registers, queues, interrupt state (mmio_transport.cpp)

    std::shared_ptr<VirtioDevice> m_device;
    std::unique_ptr<State> m_state;
};

}  // namespace vmm::devices::virtio
