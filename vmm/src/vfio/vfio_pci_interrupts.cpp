// VfioPciDevice's interrupts: INTx, the MSI-X routes and the virtual MSI
// capability. vfio-pci runs one interrupt type at a time, so every path that turns
// MSI or MSI-X on gives INTx up first and every path that turns it off (or fails
// to turn it on) brings INTx back. Everything here runs with m_mutex held (or
// during open, before the device is shared), router callbacks included.
#include <algorithm>
#include <bit>
#include <utility>

#include "vmm/vfio/vfio_pci_device.h"

namespace vmm::vfio {

namespace {

// MSI Message Control (low byte: enable, MMC, MME, 64-bit; high byte: PVM).
constexpr uint8_t kMsiEnable = 1u << 0;
constexpr uint8_t kMsiMme = 7u << 4;
constexpr uint16_t kMsi64 = 1u << 7;
constexpr uint16_t kMsiPerVectorMask = 1u << 8;
constexpr uint8_t kMsiMaxLog2 = 5;  // 32 vectors; MMC values above are reserved

template <size_t N>
uint32_t get_le(const std::array<uint8_t, N>& a, uint16_t at, uint8_t size) {
    uint32_t v = 0;
    for (uint8_t i = 0; i < size; ++i) v |= uint32_t{a[at + i]} << (8 * i);
    return v;
}

template <size_t N>
void put_le(std::array<uint8_t, N>& a, uint16_t at, uint8_t size, uint32_t v) {
    for (uint8_t i = 0; i < size; ++i) a[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

uint8_t log2_of(uint32_t count) { return static_cast<uint8_t>(std::bit_width(count) - 1); }
uint8_t mme_of(uint8_t control) { return (control & kMsiMme) >> 4; }

}  // namespace

Result<void> VfioPciDevice::enable_intx() {
    int32_t trigger = VMM_TRY(m_intx->trigger_eventfd());
    VMM_TRY(m_backend.set_irqs(m_fd, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, std::span(&trigger, 1)));
    m_intx_enabled = true;  // from here on, turning it off needs a SET_IRQS
    int32_t resample = VMM_TRY(m_intx->resample_eventfd());
    VMM_TRY(m_backend.set_irqs(m_fd, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_UNMASK, 0, std::span(&resample, 1)));
    return ok();
}

Result<void> VfioPciDevice::disable_intx() {
    if (!m_intx_enabled) return ok();
    VMM_TRY(m_backend.set_irqs(m_fd, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, {}));
    m_intx_enabled = false;
    return ok();
}

Result<void> VfioPciDevice::restore_intx() {
    if (!m_intx_capable || m_intx_enabled) return ok();
    VMM_TRY_CTX(enable_intx(), "restoring INTx");
    return ok();
}

Result<void> VfioPciDevice::start_vectors(uint32_t index, uint32_t count) {
    std::vector<int32_t> fds;
    fds.reserve(count);
    for (uint32_t v = 0; v < count; ++v) fds.push_back(VMM_TRY(m_msi->vector_eventfd(v)));
    return m_backend.set_irqs(m_fd, index, VFIO_IRQ_SET_ACTION_TRIGGER, 0, fds);
}

Result<void> VfioPciDevice::push_route(uint32_t vector, bool force_mask) {
    const MsixEntry& e = m_msix_table[vector];
    MsiMessage message{uint64_t{e.address_hi} << 32 | e.address_lo, e.data};
    return m_msi->set_route(vector, message, force_mask || (e.control & 1) != 0 || m_msix_masked);
}

Result<void> VfioPciDevice::set_msix(bool enable, bool function_mask) {
    if (enable && !m_msi) return Error("MSI-X: the VM offers no MSI routing", ENOTSUP);
    m_msix_masked = function_mask;
    const auto vectors = static_cast<uint32_t>(m_msix_table.size());
    if (enable && !m_msix_enabled) {
        if (m_msi_vectors) return Error("MSI-X stays off: MSI is on (vfio-pci runs one interrupt type at a time)", EBUSY);
        VMM_TRY(disable_intx());
        auto started = [&]() -> Result<void> {
            for (uint32_t v = 0; v < vectors; ++v) VMM_TRY(push_route(v));
            return start_vectors(VFIO_PCI_MSIX_IRQ_INDEX, vectors);
        }();
        if (!started) {  // back to INTx, nothing left deliverable
            for (uint32_t v = 0; v < vectors; ++v) (void)push_route(v, true);
            (void)restore_intx();
            return started.error().context("enabling MSI-X");
        }
        m_msix_enabled = true;
        return ok();
    }
    if (!enable && m_msix_enabled) {
        VMM_TRY(m_backend.set_irqs(m_fd, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, {}));
        m_msix_enabled = false;
        for (uint32_t v = 0; v < vectors; ++v) VMM_TRY(push_route(v, true));
        return restore_intx();
    }
    if (m_msix_enabled)
        for (uint32_t v = 0; v < vectors; ++v) VMM_TRY(push_route(v));
    return ok();
}

// The capability layout follows the device's 64-bit and per-vector-mask bits: data
// at 8 or 12, then mask and pending bits. MMC is what the device can do, limited to
// the vectors the kernel offers (VFIO_PCI_MSI_IRQ_INDEX); a kernel that offers none
// leaves the capability visible but refuses to enable it.
Result<void> VfioPciDevice::init_msi(uint16_t cap) {
    const auto control = static_cast<uint16_t>(device_config(static_cast<uint16_t>(cap + 2), 2));
    MsiCap c;
    c.offset = cap;
    c.is64 = (control & kMsi64) != 0;
    c.data = c.is64 ? 12 : 8;
    c.mask = (control & kMsiPerVectorMask) ? static_cast<uint16_t>(c.data + 4) : 0;
    c.size = c.mask ? static_cast<uint16_t>(c.mask + 8) : static_cast<uint16_t>(c.data + 4);
    if (cap + c.size > devices::pci::kLegacyConfigSize)
        return Error::msg("at {:#x} it runs past the configuration header", cap);

    auto irq = m_backend.irq_info(m_fd, VFIO_PCI_MSI_IRQ_INDEX);
    const uint32_t offered = irq ? irq->count : 0;
    c.usable = offered > 0;
    c.max_log2 = std::min<uint8_t>({static_cast<uint8_t>((control >> 1) & 7), kMsiMaxLog2,
                                    c.usable ? log2_of(offered) : uint8_t{0}});
    put_le(c.regs, 2, 2, (control & (kMsi64 | kMsiPerVectorMask)) | uint32_t{c.max_log2} << 1);
    put_le(c.writable, 2, 1, kMsiEnable | kMsiMme);
    put_le(c.writable, 4, 4, 0xfffffffcu);  // dword-aligned address
    if (c.is64) put_le(c.writable, 8, 4, ~0u);
    put_le(c.writable, c.data, 2, 0xffff);   // extended message data stays off
    const uint32_t vectors = 1u << c.max_log2;
    if (c.mask) put_le(c.writable, c.mask, 4, vectors == 32 ? ~0u : (1u << vectors) - 1);
    m_msi_cap = c;
    return ok();
}

bool VfioPciDevice::in_msi_cap(uint16_t offset) const {
    return m_msi_cap && offset >= m_msi_cap->offset && offset < m_msi_cap->offset + m_msi_cap->size;
}

uint32_t VfioPciDevice::msi_config_read(uint16_t offset, uint8_t size) {
    const MsiCap& c = *m_msi_cap;
    // Id, next pointer and pending bits are the device's; the rest is ours.
    auto from_device = [&](uint16_t rel) { return rel < 2 || rel >= c.size || (c.mask && rel >= c.mask + 4); };
    std::optional<uint32_t> device;
    uint32_t v = 0;
    for (uint8_t i = 0; i < size; ++i) {
        const auto rel = static_cast<uint16_t>(offset + i - c.offset);
        uint32_t byte = 0;
        if (from_device(rel)) {
            if (!device) device = device_config(offset, size);
            byte = (*device >> (8 * i)) & 0xff;
        } else {
            byte = c.regs[rel];
        }
        v |= byte << (8 * i);
    }
    return v;
}

Result<void> VfioPciDevice::msi_config_write(uint16_t offset, uint8_t size, uint32_t value) {
    MsiCap& c = *m_msi_cap;
    const auto before = c.regs;
    for (uint8_t i = 0; i < size; ++i) {
        const auto rel = static_cast<uint16_t>(offset + i - c.offset);
        if (rel >= c.size) continue;
        const auto byte = static_cast<uint8_t>(value >> (8 * i));
        c.regs[rel] = static_cast<uint8_t>((c.regs[rel] & ~c.writable[rel]) | (byte & c.writable[rel]));
    }
    uint8_t& control = c.regs[2];
    const bool want = (control & kMsiEnable) != 0;
    // MME beyond MMC is undefined by the spec; hold it at MMC.
    control = static_cast<uint8_t>((control & ~kMsiMme) | std::min(mme_of(control), c.max_log2) << 4);
    const bool message_changed = !std::equal(before.begin() + 4, before.end(), c.regs.begin() + 4);

    Result<void> r = ok();
    if (want && !m_msi_vectors)
        r = enable_msi(1u << mme_of(control));
    else if (!want && m_msi_vectors)
        r = disable_msi();
    else if (m_msi_vectors && message_changed)
        r = push_msi_routes(m_msi_vectors, false);
    // The guest reads what runs: the enable bit, and MME as enabled while MSI is on
    // (changing it then is undefined by the spec; the vector count is latched).
    const uint8_t shown = m_msi_vectors ? log2_of(m_msi_vectors) : mme_of(control);
    control = static_cast<uint8_t>((control & ~(kMsiMme | kMsiEnable)) | shown << 4 | (m_msi_vectors ? kMsiEnable : 0));
    return r;
}

// Vector v of `count` carries the guest's data with its low log2(count) bits
// replaced by v, as a multiple-message function does.
Result<void> VfioPciDevice::push_msi_routes(uint32_t count, bool force_mask) {
    const MsiCap& c = *m_msi_cap;
    const uint64_t address = get_le(c.regs, 4, 4) | (c.is64 ? uint64_t{get_le(c.regs, 8, 4)} << 32 : 0);
    const uint32_t data = get_le(c.regs, c.data, 2);
    const uint32_t mask = c.mask ? get_le(c.regs, c.mask, 4) : 0;
    for (uint32_t v = 0; v < count; ++v)
        VMM_TRY(m_msi->set_route(v, {address, (data & ~(count - 1)) | v}, force_mask || ((mask >> v) & 1) != 0));
    return ok();
}

Result<void> VfioPciDevice::enable_msi(uint32_t count) {
    if (!m_msi) return Error("MSI stays off: the VM offers no MSI routing", ENOTSUP);
    if (!m_msi_cap->usable) return Error("MSI stays off: the kernel offers no MSI vectors for this function", ENOTSUP);
    if (m_msix_enabled) return Error("MSI stays off: MSI-X is on (vfio-pci runs one interrupt type at a time)", EBUSY);
    VMM_TRY(disable_intx());
    auto started = [&]() -> Result<void> {
        VMM_TRY(push_msi_routes(count, false));
        return start_vectors(VFIO_PCI_MSI_IRQ_INDEX, count);
    }();
    if (!started) {  // back to INTx, nothing left deliverable
        (void)push_msi_routes(count, true);
        (void)restore_intx();
        return started.error().context(fmt::format("enabling {} MSI vector(s)", count));
    }
    m_msi_vectors = count;
    return ok();
}

Result<void> VfioPciDevice::disable_msi() {
    VMM_TRY(m_backend.set_irqs(m_fd, VFIO_PCI_MSI_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, {}));
    const uint32_t count = std::exchange(m_msi_vectors, 0);
    VMM_TRY(push_msi_routes(count, true));
    return restore_intx();
}

bool VfioPciDevice::msi_enabled() const {
    std::lock_guard lock(m_mutex);
    return m_msi_vectors != 0;
}

uint32_t VfioPciDevice::msi_vectors() const {
    std::lock_guard lock(m_mutex);
    return m_msi_vectors;
}

}  // namespace vmm::vfio
