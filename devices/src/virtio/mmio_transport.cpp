#include "devices/virtio/mmio_transport.h"

#include "mmio_transport_state.h"

namespace vmm::devices::virtio {

MmioTransport::MmioTransport(std::shared_ptr<VirtioDevice> device,
                             const memory::GuestMemory& memory,
                             std::shared_ptr<InterruptLine> irq)
    : m_device(std::move(device)),
      m_state(std::make_unique<State>(*m_device, memory, std::move(irq))) {}

MmioTransport::~MmioTransport() = default;

void MmioTransport::read(uint64_t offset, std::span<std::byte> data) {
    std::fill(data.begin(), data.end(), std::byte{0});
    if (offset >= kMmioConfigOffset) {
        // Config space: any size the bus delivers, kept inside the slot.
        if (data.empty() || offset > kMmioSlotSize || data.size() > kMmioSlotSize - offset) return;
        std::lock_guard lock(m_state->mutex);
        m_device->read_config(offset - kMmioConfigOffset, data);
        return;
    }
    std::lock_guard lock(m_state->mutex);
    if (data.size() != 4 || offset % 4 != 0) {
        m_state->warn("{}-byte read at {:#x} ignored (registers are 32-bit)", data.size(), offset);
        return;
    }
    const uint32_t value = m_state->read_register(offset);
    std::memcpy(data.data(), &value, sizeof(value));  // x86 is little-endian like virtio
}

void MmioTransport::write(uint64_t offset, std::span<const std::byte> data) {
    if (offset >= kMmioConfigOffset) {
        if (data.empty() || offset > kMmioSlotSize || data.size() > kMmioSlotSize - offset) return;
        std::lock_guard lock(m_state->mutex);
        m_device->write_config(offset - kMmioConfigOffset, data);
        return;
    }
    uint32_t value = 0;
    bool fire = false;
    {
        std::lock_guard lock(m_state->mutex);
        if (data.size() != 4 || offset % 4 != 0) {
            m_state->warn("{}-byte write at {:#x} ignored (registers are 32-bit)", data.size(),
                          offset);
            return;
        }
        std::memcpy(&value, data.data(), sizeof(value));
        if (offset != kRegQueueNotify) m_state->write_register(offset, value, fire);
    }
    if (offset != kRegQueueNotify) {
        // Raised outside the lock (an activation failure notifies the driver).
        m_state->signals->fire(fire);
        return;
    }
    // QueueNotify without an ioeventfd: handled like one, outside the lock.
    if (value <= UINT16_MAX) {
        notify_queue(static_cast<uint16_t>(value));
    } else {
        m_state->warn("QueueNotify value {:#x} out of range, ignored", value);
    }
}

void MmioTransport::notify_queue(uint16_t index) {
    {
        std::lock_guard lock(m_state->mutex);
        if (!m_state->activated || index >= m_state->queues.size()) {
            m_state->warn("notify of queue {} ignored (activated: {})", index,
                          m_state->activated);
            return;
        }
    }
    // Without the transport lock: the device takes its own lock and may signal.
    m_device->process_queue(index);
}

uint16_t MmioTransport::num_queues() const {
    std::lock_guard lock(m_state->mutex);
    return static_cast<uint16_t>(m_state->queues.size());
}

bool MmioTransport::activated() const {
    std::lock_guard lock(m_state->mutex);
    return m_state->activated;
}

uint32_t MmioTransport::status() const {
    std::lock_guard lock(m_state->mutex);
    return m_state->read_status();
}

}  // namespace vmm::devices::virtio
