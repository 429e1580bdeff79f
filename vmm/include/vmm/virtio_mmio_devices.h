// Places virtio devices on the MMIO bus: one 4 KiB virtio-mmio slot each from
// 0xc0000000, one GSI each (irqfd), and per queue what the device's notify_path()
// asks for: event_loop, an ioeventfd at QueueNotify (datamatch = queue index) that
// the VMM's event loop turns into process_queue() calls; vcpu_thread, no ioeventfd
// (the notifying vCPU handles the MMIO write itself); worker_thread, an ioeventfd
// watched by the device's own worker thread (one per device, joined on
// destruction), which installs the device_worker seccomp filter on itself first
// (docs/seccomp.md). Back-end fds always go on the VMM's loop.
// The kernel learns of them from `virtio_mmio.device=4K@ADDR:GSI` arguments.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "common/event_fd.h"
#include "common/result.h"
#include "devices/bus.h"
#include "devices/virtio/mmio_transport.h"
#include "memory/guest_memory.h"
#include "vmm/event_loop.h"
#include "vmm/kvm/kvm.h"
#include "vmm/vm_config.h"

namespace vmm {

class IrqFdLine;

struct VirtioSlot {
    std::string id;
    uint64_t base;
    uint32_t gsi;
    std::shared_ptr<devices::virtio::MmioTransport> transport;
};

class VirtioMmioDevices {
public:
    // ISA IRQs no legacy device uses; the MP table routes each to the IOAPIC pin of
    // the same number (edge, active high). Nine slots.
    static constexpr std::array<uint32_t, 9> kGsis = {5, 6, 7, 9, 10, 11, 12, 14, 15};

    // `seccomp`: the filter mode of the device worker threads; add() fails when a
    // worker cannot install its filter.
    VirtioMmioDevices(const kvm::VmFd& vm, const memory::GuestMemory& memory, devices::Bus& mmio_bus,
                      EventLoop& loop, SeccompMode seccomp = SeccompMode::on);
    ~VirtioMmioDevices();

    [[nodiscard]] Result<void> add(std::shared_ptr<devices::virtio::VirtioDevice> device, std::string id);
    // " virtio_mmio.device=4K@0xc0000000:5 ..." for every slot.
    std::string cmdline_fragment() const;
    const std::vector<VirtioSlot>& slots() const { return m_slots; }

private:
    class Worker;
    struct Wiring;
    const kvm::VmFd& m_vm;
    const memory::GuestMemory& m_memory;
    devices::Bus& m_bus;
    EventLoop& m_loop;
    SeccompMode m_seccomp;
    std::vector<VirtioSlot> m_slots;
    std::vector<std::unique_ptr<Wiring>> m_wiring;
};

}  // namespace vmm
