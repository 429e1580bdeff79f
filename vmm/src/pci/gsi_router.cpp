#include "vmm/pci/gsi_router.h"

#include <cstring>
#include <optional>

namespace vmm::pci {

namespace {

kvm_irq_routing_entry irqchip_entry(uint32_t gsi, uint32_t chip, uint32_t pin) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_IRQCHIP;
    e.u.irqchip.irqchip = chip;
    e.u.irqchip.pin = pin;
    return e;
}

}  // namespace

GsiRouter::GsiRouter(Commit commit, uint32_t gsi_limit) : m_commit(std::move(commit)), m_limit(gsi_limit) {}

std::vector<kvm_irq_routing_entry> GsiRouter::table_locked() const {
    // KVM's kvm_setup_default_irq_routing: every ISA IRQ on the PIC and the IOAPIC.
    std::vector<kvm_irq_routing_entry> table;
    for (uint32_t gsi = 0; gsi < kIoapicPins; ++gsi) {
        table.push_back(irqchip_entry(gsi, KVM_IRQCHIP_IOAPIC, gsi));
        if (gsi < 16)
            table.push_back(irqchip_entry(gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8));
    }
    for (const auto& [gsi, entry] : m_msi) table.push_back(entry);
    return table;
}

std::vector<kvm_irq_routing_entry> GsiRouter::table() const {
    std::lock_guard lock(m_mutex);
    return table_locked();
}

size_t GsiRouter::msi_routes() const {
    std::lock_guard lock(m_mutex);
    return m_msi.size();
}

Result<uint32_t> GsiRouter::allocate() {
    std::lock_guard lock(m_mutex);
    for (uint32_t gsi = kFirstMsiGsi; gsi < m_limit; ++gsi) {
        if (m_allocated.insert(gsi).second) return gsi;
    }
    return Error(fmt::format("no free GSI for an MSI route ({} in use, KVM allows {})", m_allocated.size(), m_limit),
                 ENOSPC);
}

Result<void> GsiRouter::release(uint32_t gsi) {
    std::lock_guard lock(m_mutex);
    if (!m_allocated.erase(gsi)) return Error::msg("GSI {} is not allocated", gsi);
    if (m_msi.erase(gsi) == 0) return ok();
    auto table = table_locked();
    return m_commit(table);
}

Result<void> GsiRouter::set_msi(uint32_t gsi, uint64_t address, uint32_t data) {
    std::lock_guard lock(m_mutex);
    if (!m_allocated.count(gsi)) return Error::msg("GSI {} is not allocated", gsi);
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_MSI;
    e.u.msi.address_lo = static_cast<uint32_t>(address);
    e.u.msi.address_hi = static_cast<uint32_t>(address >> 32);
    e.u.msi.data = data;
    auto previous = m_msi.find(gsi);
    if (previous != m_msi.end() && std::memcmp(&previous->second, &e, sizeof e) == 0) return ok();
    std::optional<kvm_irq_routing_entry> old;
    if (previous != m_msi.end()) old = previous->second;
    m_msi[gsi] = e;
    auto table = table_locked();
    if (auto r = m_commit(table); !r) {
        // Keep the router's view equal to what KVM has.
        if (old) m_msi[gsi] = *old; else m_msi.erase(gsi);
        return r.error().context(fmt::format("MSI route for GSI {}", gsi));
    }
    return ok();
}

}  // namespace vmm::pci
