// The VM's side of a passed-through function's interrupts.
//   KvmMsiRouter: one eventfd and one GSI per MSI/MSI-X vector; the GSI routes to
//   the vector's message, and an irqfd injects it while the vector is unmasked.
//   Masking deassigns the irqfd: vfio-pci keeps signalling the eventfd, and KVM
//   injects a pending signal when the irqfd is assigned again at unmask.
//   KvmIntxRouter: a level-triggered irqfd with a resamplefd on an IOAPIC pin.
#pragma once

#include <map>
#include <optional>

#include "common/event_fd.h"
#include "vmm/kvm/kvm.h"
#include "vmm/pci/gsi_router.h"
#include "vmm/vfio/vfio_pci_device.h"

namespace vmm::pci {

class KvmMsiRouter final : public vfio::MsiRouter {
public:
    // Vectors above `max_vectors` are refused (MSI-X allows 2048).
    KvmMsiRouter(const kvm::VmFd& vm, GsiRouter& gsis, uint32_t max_vectors = 2048)
        : m_vm(vm), m_gsis(gsis), m_max_vectors(max_vectors) {}
    ~KvmMsiRouter() override;
    KvmMsiRouter(const KvmMsiRouter&) = delete;
    KvmMsiRouter& operator=(const KvmMsiRouter&) = delete;

    [[nodiscard]] Result<int> vector_eventfd(uint32_t vector) override;
    [[nodiscard]] Result<void> set_route(uint32_t vector, const vfio::MsiMessage& message, bool masked) override;

    // For tests and statistics: vectors with an assigned irqfd, and a vector's GSI.
    size_t live_vectors() const;
    std::optional<uint32_t> gsi_of(uint32_t vector) const;

private:
    struct Vector {
        EventFd event;
        uint32_t gsi = 0;
        bool routed = false;
        std::optional<kvm::IrqFd> irqfd;  // declared after event: deassigned before it closes
    };
    [[nodiscard]] Result<Vector*> vector(uint32_t index);

    const kvm::VmFd& m_vm;
    GsiRouter& m_gsis;
    const uint32_t m_max_vectors;
    std::map<uint32_t, Vector> m_vectors;
};

class KvmIntxRouter final : public vfio::IntxRouter {
public:
    [[nodiscard]] static Result<std::unique_ptr<KvmIntxRouter>> create(const kvm::VmFd& vm, uint32_t gsi);
    [[nodiscard]] Result<int> trigger_eventfd() override { return m_trigger.fd(); }
    [[nodiscard]] Result<int> resample_eventfd() override { return m_resample.fd(); }
    uint32_t gsi() const { return m_gsi; }

private:
    KvmIntxRouter(EventFd trigger, EventFd resample, kvm::IrqFd irqfd, uint32_t gsi)
        : m_trigger(std::move(trigger)), m_resample(std::move(resample)), m_irqfd(std::move(irqfd)), m_gsi(gsi) {}
    EventFd m_trigger;
    EventFd m_resample;
    kvm::IrqFd m_irqfd;
    uint32_t m_gsi;
};

}  // namespace vmm::pci
