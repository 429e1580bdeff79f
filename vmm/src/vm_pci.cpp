// The VM's PCI bus and VFIO functions: cold-plug at creation, hot-add and removal
// through the API (vm.add-device, vm.remove-device).
#include "balloon/virtio_balloon.h"
#include "common/log.h"
#include "vmm/pci/pci_devices.h"
#include "vmm/vfio/vfio_backend.h"
#include "vmm/vm.h"

namespace vmm {

Result<void> Vm::check_balloon_allows_vfio() const {
    if (m_balloon && !(m_config.balloon && m_config.balloon->allow_vfio)) {
        return Error("the virtio-balloon cannot give memory back while a VFIO device pins all guest RAM "
                     "for DMA; use --balloon model=hyperalloc, or add allow_vfio=on to --balloon to accept "
                     "that ballooned pages stay pinned", EPERM);
    }
    return ok();
}

Result<void> Vm::setup_pci(std::shared_ptr<vfio::VfioBackend> backend) {
    pci::PciEnvironment env;
    env.vm = &m_vm_fd;
    env.pio = &m_pio_bus;
    env.mmio = &m_mmio_bus;
    env.memory = &*m_memory;
    env.backend = backend ? std::move(backend) : vfio::make_linux_vfio_backend();
    env.hyperalloc = m_hyperalloc;
    env.virtio_balloon = m_balloon;
    m_pci = VMM_TRY(pci::PciDevices::create(std::move(env)));
    if (!m_config.devices.empty()) VMM_TRY_CTX(check_balloon_allows_vfio(), "--device");
    for (VfioDeviceConfig& device : m_config.devices) {
        pci::PciDeviceInfo added = VMM_TRY_CTX(m_pci->add(device), fmt::format("--device path={}", device.path));
        device.id = added.id;  // so that vm.info and a reboot name it the same
    }
    return ok();
}

VmReply Vm::add_device(const VfioDeviceConfig& device) {
    using Kind = RequestError::Kind;
    if (auto allowed = check_balloon_allows_vfio(); !allowed)
        return RequestError{Kind::wrong_state, allowed.error().message()};
    auto added = m_pci->add(device);
    if (!added) {
        int e = added.error().errno_value();
        Kind kind = e == EBUSY || e == EEXIST ? Kind::wrong_state
                    : e == EINVAL || e == ENOENT || e == ENODEV || e == EPERM || e == EACCES ? Kind::bad_request
                                                                                              : Kind::internal;
        return RequestError{kind, added.error().message()};
    }
    m_config.devices.push_back({device.path, added->id});
    log::info("hot-added VFIO device {} ({}) at {}; a guest without ACPI hot-plug finds it after "
              "'echo 1 > /sys/bus/pci/rescan'", added->id, added->host_address, added->bdf);
    return AssignedDevice{added->id, added->bdf, added->host_address};
}

VmReply Vm::remove_device(const std::string& id) {
    if (auto removed = m_pci->remove(id); !removed) {
        auto kind = removed.error().errno_value() == ENOENT ? RequestError::Kind::not_found
                                                             : RequestError::Kind::internal;
        return RequestError{kind, removed.error().message()};
    }
    std::erase_if(m_config.devices, [&](const VfioDeviceConfig& d) { return d.id == id; });
    return Empty{};
}

}  // namespace vmm
