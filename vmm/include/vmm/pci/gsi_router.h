// The VM's KVM GSI routing table. KVM_SET_GSI_ROUTING replaces the whole table, so
// the router keeps KVM's default routes (GSI 0-15 to the PIC and IOAPIC, 16-23 to
// the IOAPIC: irqfds of the legacy devices and INTx lines keep working) and adds
// one MSI route per allocated GSI from 24 up. Thread-safe: MSI-X table writes
// arrive on vCPU threads, hot-plug on the VMM thread.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <vector>

#include "common/result.h"

namespace vmm::pci {

class GsiRouter {
public:
    static constexpr uint32_t kIoapicPins = 24;
    static constexpr uint32_t kFirstMsiGsi = kIoapicPins;
    // Applies a complete table (VmFd::set_gsi_routing outside tests).
    using Commit = std::function<Result<void>(std::span<const kvm_irq_routing_entry>)>;

    GsiRouter(Commit commit, uint32_t gsi_limit);

    // A free GSI for an MSI route; none is routed until set_msi.
    [[nodiscard]] Result<uint32_t> allocate();
    // Forgets the GSI's route (committed) and frees it.
    [[nodiscard]] Result<void> release(uint32_t gsi);
    // Routes `gsi` to an MSI message and commits the table.
    [[nodiscard]] Result<void> set_msi(uint32_t gsi, uint64_t address, uint32_t data);

    // The table as it is committed (KVM's defaults first), for tests and statistics.
    std::vector<kvm_irq_routing_entry> table() const;
    size_t msi_routes() const;

private:
    std::vector<kvm_irq_routing_entry> table_locked() const;

    const Commit m_commit;
    const uint32_t m_limit;
    mutable std::mutex m_mutex;
    std::set<uint32_t> m_allocated;
    std::map<uint32_t, kvm_irq_routing_entry> m_msi;
};

}  // namespace vmm::pci
