// One virtual machine: KVM objects, guest memory, the legacy devices, the loaded
// payload and the vCPU threads. create() does all set-up and reports bad input as
// an Error; run() drives the VMM thread's event loop until the guest ends.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/result.h"
#include "devices/bus.h"
#include "devices/virtio/virtio_device.h"
#include "memory/guest_memory.h"
#include "vmm/event_loop.h"
#include "vmm/exit_notifier.h"
#include "vmm/kvm/kvm.h"
#include "vmm/request_channel.h"
#include "vmm/vm_requests.h"
#include "vmm/vcpu.h"
#include "vmm/vm_config.h"

namespace vmm::balloon {
class VirtioBalloon;
}
namespace vmm::balloon::hyperalloc {
class HyperAllocDevice;
}
namespace vmm::devices::virtio {
class ConsoleDevice;
}
namespace vmm::pci {
class PciDevices;
}
namespace vmm::vfio {
class VfioBackend;
}

namespace vmm {

class AutoBalloonController;

// What ping answers, also without a VM.
PingInfo ping_info();

namespace devices_fwd {
class LegacyDevices;
}
class VirtioMmioDevices;

// What the VM uses from the host beyond KVM; tests substitute simulations.
struct VmServices {
    std::shared_ptr<vfio::VfioBackend> vfio;  // null: the Linux VFIO ioctls
};

class Vm {
public:
    [[nodiscard]] static Result<std::unique_ptr<Vm>> create(const VmConfig& config, VmServices services = {});
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;
    ~Vm();

    // Starts the vCPUs and runs until the guest resets, powers off, or fails.
    [[nodiscard]] Result<VmExitRequest> run();

    // Lifecycle, callable from the VMM thread (the API will use these).
    void pause();
    void resume();
    // Ends run() from any thread (the API's shutdown; tests).
    void request_exit(VmExitKind kind, std::string reason) { m_exits->request(kind, std::move(reason)); }
    // Each vCPU's current state, in vCPU order.
    std::vector<Vcpu::State> vcpu_states() const;

    // Watch `channel` on the VMM thread while run() runs; requests are answered
    // by handle_request().
    void attach_requests(std::shared_ptr<RequestChannel> channel) { m_requests = std::move(channel); }
    [[nodiscard]] VmReply handle_request(const VmRequest& request);
    VmInfo info() const;

    const VmConfig& config() const { return m_config; }
    const memory::GuestMemory& memory() const { return *m_memory; }
    // The kernel command line actually passed to the guest.
    const std::string& effective_cmdline() const { return m_cmdline; }

private:
    Vm(VmConfig config, kvm::Kvm kvm, kvm::VmFd vm_fd, std::unique_ptr<ExitNotifier> exits);
    [[nodiscard]] Result<void> setup_memory();
    [[nodiscard]] Result<void> setup_legacy_devices();
    [[nodiscard]] Result<void> setup_virtio_devices();
    [[nodiscard]] Result<void> add_balloon(const BalloonConfig& balloon);
    // PCI bus 0 and the --device functions; after the balloon (DMA safety), before
    // the payload (the MP table carries their INTx lines). vm_pci.cpp.
    [[nodiscard]] Result<void> setup_pci(std::shared_ptr<vfio::VfioBackend> backend);
    [[nodiscard]] Result<void> check_balloon_allows_vfio() const;
    [[nodiscard]] VmReply add_device(const VfioDeviceConfig& device);
    [[nodiscard]] VmReply remove_device(const std::string& id);
    [[nodiscard]] Result<void> load_payload(std::span<const std::byte> kernel, std::span<const std::byte> initramfs);
    [[nodiscard]] Result<void> create_vcpus();
    [[nodiscard]] Result<void> watch_stdin(EventLoop& loop);
    BalloonInfo balloon_info() const;
    [[nodiscard]] VmReply resize_balloon(uint64_t bytes);
    void flush_pending_input();

    VmConfig m_config;
    bool m_pvm_host = false;
    bool m_paused = false;  // through the API
    std::shared_ptr<RequestChannel> m_requests;
    std::string m_cmdline;
    kvm::Kvm m_kvm;
    kvm::VmFd m_vm_fd;
    std::unique_ptr<ExitNotifier> m_exits;
    std::optional<memory::GuestMemory> m_memory;
    devices::Bus m_pio_bus;
    devices::Bus m_mmio_bus;
    std::optional<EventLoop> m_loop;  // the VMM thread's; outlives the devices on it
    std::unique_ptr<devices_fwd::LegacyDevices> m_legacy;
    std::unique_ptr<VirtioMmioDevices> m_virtio;
    std::shared_ptr<devices::virtio::ConsoleDevice> m_virtio_console;  // stdin target when the serial is not
    // At most one of the two balloons (--balloon model=), for resize and statistics.
    std::shared_ptr<balloon::VirtioBalloon> m_balloon;
    std::shared_ptr<balloon::hyperalloc::HyperAllocDevice> m_hyperalloc;
    // --balloon ...,auto=on: sizes whichever balloon there is; on m_loop, and
    // destroyed before the balloons and the loop.
    std::unique_ptr<AutoBalloonController> m_auto_balloon;
    // The PCI bus and its VFIO functions; uses the buses, memory and balloons above.
    std::unique_ptr<pci::PciDevices> m_pci;
    std::optional<memory::GuestAddress> m_entry;
    std::vector<std::byte> m_pending_input;  // stdin bytes the console has not taken yet
    std::function<size_t(std::span<const std::byte>)> m_input_target;
    // Last: vCPU threads stop before anything they use is destroyed.
    std::vector<std::unique_ptr<Vcpu>> m_vcpus;
};

}  // namespace vmm
