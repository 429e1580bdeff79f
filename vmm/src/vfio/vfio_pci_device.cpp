#include "vmm/vfio/vfio_pci_device.h"

#include <unistd.h>

#include <cstring>

#include "common/log.h"

namespace vmm::vfio {

namespace pci = devices::pci;

namespace {

constexpr uint16_t kBarEnd = pci::kBar0 + 4 * pci::kBarCount;
constexpr uint16_t kMsixEnable = 1u << 15;
constexpr uint16_t kMsixFunctionMask = 1u << 14;
constexpr uint32_t kMsixEntrySize = 16;

log::RateLimiter g_limiter;

template <typename... Args>
void warn_limited(fmt::format_string<Args...> f, Args&&... args) {
    if (g_limiter.allow()) log::warn(f, std::forward<Args>(args)...);
}

bool overlaps(uint16_t offset, uint8_t size, uint16_t start, uint16_t end) {
    return offset < end && offset + size > start;
}

}  // namespace

Result<std::shared_ptr<VfioPciDevice>> VfioPciDevice::open(std::shared_ptr<VfioContainer> container,
                                                           const std::string& address, MsiRouter* msi,
                                                           IntxRouter* intx) {
    if (!container) return Error::msg("VFIO device {}: no container", address);
    VfioBackend& backend = container->backend();
    auto group = backend.iommu_group_of(address);
    if (!group) {
        if (group.error().errno_value() == ENOENT)
            return Error(fmt::format("no PCI device {} with an IOMMU group (is the address right and the IOMMU "
                                     "enabled?)", address), ENOENT);
        return group.error().context(fmt::format("VFIO device {}", address));
    }
    VMM_TRY(container->claim_device(address));
    auto group_fd = container->attach_group(*group);
    if (!group_fd) {
        container->release_device(address);
        return group_fd.error().context(fmt::format("VFIO device {}", address));
    }
    auto fd = backend.group_device(*group_fd, address);
    if (!fd) {
        container->release_device(address);
        if (fd.error().errno_value() == EBUSY)
            return Error(fmt::format("PCI device {} is busy (opened by another VFIO user)", address), EBUSY);
        return fd.error().context(fmt::format("VFIO device {}", address));
    }
    // From here the destructor releases the claim and the fd.
    std::shared_ptr<VfioPciDevice> device(new VfioPciDevice(std::move(container), address, *fd, msi, intx));
    VMM_TRY_CTX(device->init(), fmt::format("VFIO device {}", address));
    return device;
}

VfioPciDevice::VfioPciDevice(std::shared_ptr<VfioContainer> container, std::string address, int fd, MsiRouter* msi,
                             IntxRouter* intx)
    : m_container(std::move(container)), m_backend(m_container->backend()), m_address(std::move(address)),
      m_fd(fd), m_msi(msi), m_intx(intx), m_virtual(0, 0, 0) {}

VfioPciDevice::~VfioPciDevice() {
    if (m_msi_vectors) (void)m_backend.set_irqs(m_fd, VFIO_PCI_MSI_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, {});
    if (m_msix_enabled) (void)m_backend.set_irqs(m_fd, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, {});
    if (m_intx_enabled) (void)m_backend.set_irqs(m_fd, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_TRIGGER, 0, {});
    // Leave the device quiet for its next user, as at open.
    if (auto info = m_backend.device_info(m_fd); info && (info->flags & VFIO_DEVICE_FLAGS_RESET))
        (void)m_backend.reset(m_fd);
    for (const MappableBar& bar : m_mappable) m_backend.region_munmap(bar.host, bar.size);
    m_backend.close(m_fd);
    m_container->release_device(m_address);
}

uint32_t VfioPciDevice::device_config(uint16_t offset, uint8_t size) {
    std::array<std::byte, 4> buf{};
    if (!m_backend.region_read(m_fd, m_config_offset + offset, std::span(buf.data(), size))) return ~0u >> (32 - 8 * size);
    uint32_t v = 0;
    std::memcpy(&v, buf.data(), size);
    return v;
}

Result<void> VfioPciDevice::init() {
    DeviceInfo info = VMM_TRY(m_backend.device_info(m_fd));
    if (!(info.flags & VFIO_DEVICE_FLAGS_PCI)) return Error("not a vfio-pci device", ENODEV);
    if (info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) return Error("no configuration region", ENODEV);
    m_config_offset = VMM_TRY(m_backend.region_info(m_fd, VFIO_PCI_CONFIG_REGION_INDEX)).offset;
    if (info.flags & VFIO_DEVICE_FLAGS_RESET) VMM_TRY_CTX(m_backend.reset(m_fd), "reset at open");

    std::array<pci::BarKind, pci::kBarCount> kinds{};
    for (uint8_t i = 0; i < pci::kBarCount; ++i) {
        RegionInfo region = VMM_TRY(m_backend.region_info(m_fd, i));
        if (region.size == 0) continue;
        uint32_t raw = device_config(static_cast<uint16_t>(pci::kBar0 + 4 * i), 4);
        kinds[i] = (raw & 1) ? pci::BarKind::Io
                   : ((raw >> 1) & 3) == 2 ? pci::BarKind::Memory64 : pci::BarKind::Memory32;
        VMM_TRY_CTX(m_virtual.add_bar(i, kinds[i], region.size, (raw & 8) != 0), fmt::format("BAR {}", i));
        m_regions[i] = region;
        if (kinds[i] == pci::BarKind::Memory64) ++i;
    }

    auto caps = pci::walk_capabilities([this](uint16_t off) { return static_cast<uint8_t>(device_config(off, 1)); });
    for (const pci::Capability& cap : caps) {
        if (cap.id == pci::kCapIdMsi) VMM_TRY_CTX(init_msi(cap.offset), "MSI capability");
        if (cap.id != pci::kCapIdMsix) continue;
        uint16_t control = static_cast<uint16_t>(device_config(static_cast<uint16_t>(cap.offset + 2), 2));
        uint32_t table = device_config(static_cast<uint16_t>(cap.offset + 4), 4);
        uint32_t pba = device_config(static_cast<uint16_t>(cap.offset + 8), 4);
        MsixLayout l{cap.offset, static_cast<uint8_t>(table & 7), static_cast<uint8_t>(pba & 7), table & ~7u, pba & ~7u};
        uint32_t vectors = (control & 0x7ff) + 1u;
        if (l.table_bar >= pci::kBarCount || m_regions[l.table_bar].size < uint64_t{l.table_offset} + vectors * kMsixEntrySize)
            return Error::msg("MSI-X table (BAR {}, offset {:#x}, {} vectors) lies outside its BAR", l.table_bar,
                              l.table_offset, vectors);
        m_msix = l;
        m_msix_table.assign(vectors, MsixEntry{});
    }

    // Map what the guest may touch directly: memory BARs of whole pages the kernel
    // lets us mmap, but never the MSI-X table's or PBA's BAR (a memory slot there
    // would let the guest program vectors behind the table emulation).
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    for (uint8_t i = 0; i < pci::kBarCount; ++i) {
        const RegionInfo& region = m_regions[i];
        if (region.size == 0 || !(region.flags & VFIO_REGION_INFO_FLAG_MMAP) || kinds[i] == pci::BarKind::Io ||
            region.size % page != 0 || (m_msix && (i == m_msix->table_bar || i == m_msix->pba_bar)))
            continue;
        void* host = VMM_TRY_CTX(m_backend.region_mmap(m_fd, region.offset, region.size), fmt::format("BAR {}", i));
        m_mappable.push_back({i, region.size, host});
    }

    uint8_t pin = static_cast<uint8_t>(device_config(pci::kInterruptPin, 1));
    m_intx_capable = m_intx && pin != 0 && VMM_TRY(m_backend.irq_info(m_fd, VFIO_PCI_INTX_IRQ_INDEX)).count > 0;
    if (m_intx_capable) VMM_TRY_CTX(enable_intx(), "INTx");
    return ok();
}

uint32_t VfioPciDevice::config_read(uint16_t offset, uint8_t size) {
    std::lock_guard lock(m_mutex);
    if (overlaps(offset, size, pci::kBar0, kBarEnd)) return m_virtual.read(offset, size);
    if (overlaps(offset, size, pci::kExpansionRom, pci::kExpansionRom + 4)) return 0;  // no ROM for the guest
    if (in_msi_cap(offset)) return msi_config_read(offset, size);
    uint32_t v = device_config(offset, size);
    if (m_msix) {
        uint16_t ctl = static_cast<uint16_t>(m_msix->cap + 2);
        uint16_t virt = (m_msix_enabled ? kMsixEnable : 0) | (m_msix_masked ? kMsixFunctionMask : 0);
        if (overlaps(offset, size, static_cast<uint16_t>(ctl + 1), static_cast<uint16_t>(ctl + 2))) {
            unsigned shift = 8 * (ctl + 1 - offset);
            v = (v & ~(0xc0u << shift)) | (uint32_t{static_cast<uint8_t>(virt >> 8)} << shift);
        }
    }
    return v;
}

void VfioPciDevice::config_write(uint16_t offset, uint8_t size, uint32_t value) {
    std::lock_guard lock(m_mutex);
    if (overlaps(offset, size, pci::kBar0, kBarEnd)) return m_virtual.write(offset, size, value);
    if (overlaps(offset, size, pci::kExpansionRom, pci::kExpansionRom + 4)) return;
    if (in_msi_cap(offset)) {
        if (auto r = msi_config_write(offset, size, value); !r)
            warn_limited("VFIO {}: MSI: {}", m_address, r.error().message());
        return;
    }
    if (m_msix) {
        uint16_t hi = static_cast<uint16_t>(m_msix->cap + 3);  // enable and function-mask live here
        if (overlaps(offset, size, hi, static_cast<uint16_t>(hi + 1))) {
            auto byte = static_cast<uint8_t>(value >> (8 * (hi - offset)));
            if (auto r = set_msix((byte & 0x80) != 0, (byte & 0x40) != 0); !r)
                warn_limited("VFIO {}: MSI-X control: {}", m_address, r.error().message());
            return;  // the rest of the word is read-only
        }
    }
    std::array<std::byte, 4> buf{};
    std::memcpy(buf.data(), &value, size);
    if (auto w = m_backend.region_write(m_fd, m_config_offset + offset, std::span(buf.data(), size)); !w)
        warn_limited("VFIO {}: config write at {:#x}: {}", m_address, offset, w.error().message());
}

std::vector<pci::BarInfo> VfioPciDevice::bars() const {
    std::lock_guard lock(m_mutex);
    return m_virtual.bars();
}

bool VfioPciDevice::msix_enabled() const {
    std::lock_guard lock(m_mutex);
    return m_msix_enabled;
}

bool VfioPciDevice::in_msix_table(uint8_t bar, uint64_t offset, size_t size) const {
    if (!m_msix || bar != m_msix->table_bar) return false;
    uint64_t start = m_msix->table_offset, end = start + m_msix_table.size() * kMsixEntrySize;
    return offset < end && offset + size > start;
}

void VfioPciDevice::bar_read(uint8_t bar, uint64_t offset, std::span<std::byte> data) {
    std::lock_guard lock(m_mutex);
    std::memset(data.data(), 0xff, data.size());
    if (bar >= pci::kBarCount || offset > m_regions[bar].size || data.size() > m_regions[bar].size - offset) return;
    if (in_msix_table(bar, offset, data.size())) {
        uint64_t rel = offset - m_msix->table_offset;
        // Dword or aligned qword accesses within one entry, as the PCI spec requires.
        if (rel % data.size() != 0 || (data.size() != 4 && data.size() != 8)) return;
        std::memcpy(data.data(), reinterpret_cast<const std::byte*>(&m_msix_table[rel / kMsixEntrySize]) + rel % kMsixEntrySize,
                    data.size());
        return;
    }
    if (auto r = m_backend.region_read(m_fd, m_regions[bar].offset + offset, data); !r) {
        std::memset(data.data(), 0xff, data.size());
        warn_limited("VFIO {}: BAR {} read at {:#x}: {}", m_address, bar, offset, r.error().message());
    }
}

void VfioPciDevice::bar_write(uint8_t bar, uint64_t offset, std::span<const std::byte> data) {
    std::lock_guard lock(m_mutex);
    if (bar >= pci::kBarCount || offset > m_regions[bar].size || data.size() > m_regions[bar].size - offset) return;
    if (in_msix_table(bar, offset, data.size())) {
        uint64_t rel = offset - m_msix->table_offset;
        if (rel % data.size() != 0 || (data.size() != 4 && data.size() != 8)) return;
        uint32_t vector = static_cast<uint32_t>(rel / kMsixEntrySize);
        std::memcpy(reinterpret_cast<std::byte*>(&m_msix_table[vector]) + rel % kMsixEntrySize, data.data(), data.size());
        m_msix_table[vector].control &= 1;  // only the mask bit is defined
        if (m_msix_enabled)
            if (auto r = push_route(vector); !r)
                warn_limited("VFIO {}: MSI-X vector {}: {}", m_address, vector, r.error().message());
        return;
    }
    if (auto w = m_backend.region_write(m_fd, m_regions[bar].offset + offset, data); !w)
        warn_limited("VFIO {}: BAR {} write at {:#x}: {}", m_address, bar, offset, w.error().message());
}

}  // namespace vmm::vfio
