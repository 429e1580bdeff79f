// The guest's PCI bus 0 and the VFIO functions assigned to it (--device,
// vm.add-device, vm.remove-device; docs/vfio.md).
//
// The host bridge answers on 0xCF8/0xCFC and in ECAM. Each function gets a slot,
// BAR addresses pre-programmed as firmware would (32-bit memory BARs in the PCI
// window of the MMIO hole, 64-bit ones above RAM, I/O BARs from 0xc000), and its
// decode windows follow the guest: when the command register or a BAR changes,
// mmap-able BARs become KVM memory slots and the others trapped bus ranges.
// DMA: the first function creates the type1 container; all guest RAM except what
// the HyperAlloc balloon has reclaimed is mapped before the function is visible,
// and the balloon then unmaps/maps frames as it reclaims/installs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "devices/bus.h"
#include "devices/pci/pci_root.h"
#include "memory/guest_memory.h"
#include "vmm/boot/mptable.h"
#include "vmm/kvm/kvm.h"
#include "vmm/pci/gsi_router.h"
#include "vmm/vfio/vfio_container.h"
#include "vmm/vm_config.h"

namespace vmm::balloon::hyperalloc {
class HyperAllocDevice;
}
namespace vmm::balloon {
class VirtioBalloon;
}

namespace vmm::pci {

struct PciDeviceInfo {
    std::string id;
    std::string bdf;           // the guest's view: "0000:00:01.0"
    std::string host_address;  // "0000:01:00.0"
};

// "/sys/bus/pci/devices/0000:01:00.0/" or "0000:01:00.0" -> "0000:01:00.0".
[[nodiscard]] Result<std::string> pci_address_from_path(const std::string& path);

struct PciEnvironment {
    const kvm::VmFd* vm = nullptr;
    devices::Bus* pio = nullptr;
    devices::Bus* mmio = nullptr;
    const memory::GuestMemory* memory = nullptr;
    std::shared_ptr<vfio::VfioBackend> backend;
    // The balloon kept DMA-safe (at most one is set). A virtio-balloon is only
    // allowed with allow_vfio=on, and then stops discarding (VirtioBalloon::set_pinned).
    std::shared_ptr<balloon::hyperalloc::HyperAllocDevice> hyperalloc;
    std::shared_ptr<balloon::VirtioBalloon> virtio_balloon;
};

class PciDevices {
public:
    static constexpr uint32_t kFirstBarMemslot = 16;  // RAM takes the slots below

    [[nodiscard]] static Result<std::unique_ptr<PciDevices>> create(PciEnvironment env);
    ~PciDevices();
    PciDevices(const PciDevices&) = delete;
    PciDevices& operator=(const PciDevices&) = delete;

    // Opens, resets and attaches a function; fails cleanly, leaving nothing behind.
    [[nodiscard]] Result<PciDeviceInfo> add(const VfioDeviceConfig& config);
    [[nodiscard]] Result<void> remove(const std::string& id);
    std::vector<PciDeviceInfo> list() const;
    // INTx lines of the functions present now (the MP table at boot).
    std::vector<boot::PciIrqLine> intx_lines() const;
    // null until the first function is added.
    std::shared_ptr<vfio::VfioContainer> container() const;
    GsiRouter& gsi_router() { return *m_gsis; }
    devices::pci::PciRoot& root() { return *m_root; }

    struct Function;  // pci_devices.cpp

private:
    explicit PciDevices(PciEnvironment env);
    [[nodiscard]] Result<void> start_dma();
    void stop_dma();
    void update_decode(uint8_t slot);
    void unmap_bars(Function& function);

    PciEnvironment m_env;
    std::shared_ptr<devices::pci::PciRoot> m_root;
    std::unique_ptr<GsiRouter> m_gsis;

    mutable std::mutex m_mutex;  // the functions, the container and the BAR windows
    std::shared_ptr<vfio::VfioContainer> m_container;
    std::map<uint8_t, std::unique_ptr<Function>> m_functions;  // by slot
    uint64_t m_next_mem32 = 0, m_next_mem64 = 0, m_next_io = 0;
    std::vector<uint32_t> m_free_memslots;
    uint32_t m_next_memslot = kFirstBarMemslot;
    uint32_t m_next_id = 0;
};

}  // namespace vmm::pci
