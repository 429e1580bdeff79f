#include "vmm/virtio_mmio_devices.h"

#include <sys/epoll.h>

#include "common/log.h"
#include "irq_line.h"
#include "memory/x86_64_layout.h"

namespace vmm {

// What keeps a slot's interrupts and notifications alive; removed from the loop on
// destruction.
struct VirtioMmioDevices::Wiring {
    EventLoop* loop = nullptr;
    std::shared_ptr<IrqFdLine> irq;
    std::vector<EventFd> queue_events;
    std::vector<kvm::IoEventFd> ioevents;
    std::vector<int> watched_fds;

    ~Wiring() {
        for (int fd : watched_fds) (void)loop->remove(fd);
    }
};

VirtioMmioDevices::VirtioMmioDevices(const kvm::VmFd& vm, const memory::GuestMemory& memory, devices::Bus& mmio_bus,
                                     EventLoop& loop)
    : m_vm(vm), m_memory(memory), m_bus(mmio_bus), m_loop(loop) {}

VirtioMmioDevices::~VirtioMmioDevices() = default;

Result<void> VirtioMmioDevices::add(std::shared_ptr<devices::virtio::VirtioDevice> device, std::string id) {
    size_t index = m_slots.size();
    if (index >= kGsis.size()) {
        return Error::msg("too many virtio devices: at most {} are supported", kGsis.size());
    }
    uint64_t base = memory::x86_64::kVirtioMmioBase + index * devices::virtio::kMmioSlotSize;
    uint32_t gsi = kGsis[index];

    auto wiring = std::make_unique<Wiring>();
    wiring->loop = &m_loop;
    wiring->irq = VMM_TRY(IrqFdLine::create(m_vm, gsi));
    auto transport = std::make_shared<devices::virtio::MmioTransport>(device, m_memory, wiring->irq);
    VMM_TRY_CTX(m_bus.insert(transport, base, devices::virtio::kMmioSlotSize), id);

    // Queue notifications go straight from KVM to the event loop, never to a vCPU.
    uint16_t queues = static_cast<uint16_t>(device->queue_max_sizes().size());
    for (uint16_t q = 0; q < queues; ++q) {
        EventFd event = VMM_TRY(EventFd::create());
        wiring->ioevents.push_back(VMM_TRY(m_vm.register_ioeventfd(
            event, base + devices::virtio::kMmioQueueNotifyOffset, 4, q, false)));
        int fd = event.fd();
        VMM_TRY(m_loop.add(fd, EPOLLIN, [fd, q, transport](uint32_t) {
            uint64_t value = 0;
            // Clear the eventfd before processing so a notification that arrives
            // while we work is not lost.
            (void)::read(fd, &value, sizeof(value));
            transport->notify_queue(q);
        }));
        wiring->watched_fds.push_back(fd);
        wiring->queue_events.push_back(std::move(event));
    }
    for (int fd : device->backend_fds()) {
        VMM_TRY(m_loop.add(fd, EPOLLIN | EPOLLET, [fd, device](uint32_t events) { device->process_backend(fd, events); }));
        wiring->watched_fds.push_back(fd);
    }
    log::info("virtio device '{}' (type {}) at {:#x}, IRQ {}, {} queues", id, device->device_type(), base, gsi, queues);
    m_slots.push_back({std::move(id), base, gsi, std::move(transport)});
    m_wiring.push_back(std::move(wiring));
    return ok();
}

std::string VirtioMmioDevices::cmdline_fragment() const {
    std::string out;
    for (const auto& slot : m_slots) out += fmt::format(" virtio_mmio.device=4K@{:#x}:{}", slot.base, slot.gsi);
    return out;
}

}  // namespace vmm
