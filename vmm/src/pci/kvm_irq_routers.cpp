#include "vmm/pci/kvm_irq_routers.h"

#include "common/log.h"

namespace vmm::pci {

KvmMsiRouter::~KvmMsiRouter() {
    for (auto& [index, v] : m_vectors) {
        v.irqfd.reset();
        if (auto r = m_gsis.release(v.gsi); !r) log::warn("MSI vector {}: {}", index, r.error().message());
    }
}

Result<KvmMsiRouter::Vector*> KvmMsiRouter::vector(uint32_t index) {
    if (index >= m_max_vectors) return Error::msg("MSI vector {} out of range (at most {})", index, m_max_vectors);
    if (auto it = m_vectors.find(index); it != m_vectors.end()) return &it->second;
    EventFd event = VMM_TRY(EventFd::create());
    uint32_t gsi = VMM_TRY(m_gsis.allocate());
    auto [it, inserted] = m_vectors.emplace(index, Vector{std::move(event), gsi, false, std::nullopt});
    return &it->second;
}

Result<int> KvmMsiRouter::vector_eventfd(uint32_t index) {
    Vector* v = VMM_TRY(vector(index));
    return v->event.fd();
}

Result<void> KvmMsiRouter::set_route(uint32_t index, const vfio::MsiMessage& message, bool masked) {
    Vector* v = VMM_TRY(vector(index));
    if (masked) {
        v->irqfd.reset();
        return ok();
    }
    VMM_TRY(m_gsis.set_msi(v->gsi, message.address, message.data));
    v->routed = true;
    if (!v->irqfd) v->irqfd.emplace(VMM_TRY(m_vm.register_irqfd(v->event, v->gsi)));
    return ok();
}

size_t KvmMsiRouter::live_vectors() const {
    size_t n = 0;
    for (const auto& [index, v] : m_vectors) n += v.irqfd.has_value();
    return n;
}

std::optional<uint32_t> KvmMsiRouter::gsi_of(uint32_t index) const {
    auto it = m_vectors.find(index);
    if (it == m_vectors.end()) return std::nullopt;
    return it->second.gsi;
}

Result<std::unique_ptr<KvmIntxRouter>> KvmIntxRouter::create(const kvm::VmFd& vm, uint32_t gsi) {
    EventFd trigger = VMM_TRY(EventFd::create());
    EventFd resample = VMM_TRY(EventFd::create());
    kvm::IrqFd irqfd = VMM_TRY(vm.register_resample_irqfd(trigger, resample, gsi));
    return std::unique_ptr<KvmIntxRouter>(
        new KvmIntxRouter(std::move(trigger), std::move(resample), std::move(irqfd), gsi));
}

}  // namespace vmm::pci
