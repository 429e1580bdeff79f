#include "sim_vfio.h"

#include <sys/mman.h>

#include "devices/pci/config_space.h"

namespace vmm::vfio::sim {

namespace {
Error kerr(const char* what, int e) { return Error(fmt::format("{}: {}", what, std::strerror(e)), e); }
constexpr uint64_t kRegionShift = 40;  // vfio-pci: region index << 40
void put16(std::vector<uint8_t>& c, size_t at, uint16_t v) { c[at] = uint8_t(v); c[at + 1] = uint8_t(v >> 8); }
void put32(std::vector<uint8_t>& c, size_t at, uint32_t v) { put16(c, at, uint16_t(v)); put16(c, at + 2, uint16_t(v >> 16)); }
uint16_t get16(const std::vector<uint8_t>& c, size_t at) { return uint16_t(c[at] | c[at + 1] << 8); }

// vfio_pci_get_irq_count: INTx when there is a pin, MSI and MSI-X from their capabilities.
uint32_t irq_count(const SimFunction& f, uint32_t index) {
    uint8_t want = index == VFIO_PCI_MSI_IRQ_INDEX ? devices::pci::kCapIdMsi
                   : index == VFIO_PCI_MSIX_IRQ_INDEX ? devices::pci::kCapIdMsix : 0;
    if (index == VFIO_PCI_INTX_IRQ_INDEX) return f.config[0x3d] ? 1 : 0;
    for (const auto& cap : devices::pci::walk_capabilities([&](uint16_t off) { return f.config[off]; })) {
        if (cap.id != want) continue;
        uint16_t control = get16(f.config, cap.offset + 2);
        return want == devices::pci::kCapIdMsi ? 1u << ((control >> 1) & 7) : (control & 0x7ffu) + 1;
    }
    return 0;
}
}  // namespace

SimFunction::SimFunction() : config(256, 0), bar0(kBar0Size), bar2(kBar2Size) {
    put16(config, 0x00, 0x8086);
    put16(config, 0x02, 0x10fb);
    put32(config, 0x08, 0x02000001);
    put16(config, 0x06, 0x0010);  // capability list
    put32(config, 0x10, 0x0000000c);  // BAR0: 64-bit prefetchable memory
    put32(config, 0x18, 0x00000000);  // BAR2: 32-bit memory
    config[0x34] = 0x40;
    config[0x3d] = 1;  // INTA#
    config[0x40] = 0x01;  // power management
    config[0x41] = kMsixCap;
    config[kMsixCap] = 0x11;
    config[kMsixCap + 1] = 0;
    put16(config, kMsixCap + 2, kMsixVectors - 1);
    put32(config, kMsixCap + 4, 2);  // table: BAR2 offset 0
    put32(config, kMsixCap + 8, kPbaOffset | 2);
    config[kMsixCap + 1] = kMsiCap;
    config[kMsiCap] = 0x05;
    set_msi(true, true, 2);
}

void SimFunction::set_msi(bool is64, bool per_vector_mask, uint8_t log2_vectors) {
    put16(config, kMsiCap + 2, uint16_t((is64 ? 0x80 : 0) | (per_vector_mask ? 0x100 : 0) | (log2_vectors & 7) << 1));
}

SimFunction& SimVfio::add_function(const std::string& address, uint32_t group) {
    groups[group];
    SimFunction& f = functions[address];
    f.group = group;
    return f;
}

uint64_t SimVfio::mapped_bytes(int fd) const {
    std::lock_guard lock(dma_mutex);
    uint64_t n = 0;
    if (auto it = containers.find(fd); it != containers.end())
        for (auto& [iova, m] : it->second.mappings) n += m.size;
    return n;
}

SimContainer* SimVfio::container(int fd) {
    auto it = containers.find(fd);
    return it == containers.end() ? nullptr : &it->second;
}

SimFunction* SimVfio::device(int fd) {
    auto it = m_device_fds.find(fd);
    return it == m_device_fds.end() ? nullptr : &functions.at(it->second);
}

Result<int> SimVfio::open_container() {
    containers[m_next_fd];
    return m_next_fd++;
}

Result<int> SimVfio::api_version(int fd) {
    if (!container(fd)) return kerr("VFIO_GET_API_VERSION", EBADF);
    return VFIO_API_VERSION;
}

Result<bool> SimVfio::check_extension(int fd, uint32_t ext) {
    if (!container(fd)) return kerr("VFIO_CHECK_EXTENSION", EBADF);
    return ext == VFIO_TYPE1_IOMMU || ext == VFIO_TYPE1v2_IOMMU;
}

Result<void> SimVfio::set_iommu(int fd, uint32_t type) {
    SimContainer* c = container(fd);
    if (!c) return kerr("VFIO_SET_IOMMU", EBADF);
    // The kernel needs a group in the container to pick an IOMMU driver.
    if (c->groups.empty() || c->iommu) return kerr("VFIO_SET_IOMMU", EINVAL);
    if (type != VFIO_TYPE1v2_IOMMU && type != VFIO_TYPE1_IOMMU) return kerr("VFIO_SET_IOMMU", ENODEV);
    c->iommu = true;
    return ok();
}

// vfio_dma_do_map: alignment/size/overflow -> EINVAL, overlap -> EEXIST, no entries
// left -> ENOSPC, pinning past RLIMIT_MEMLOCK -> ENOMEM.
Result<void> SimVfio::dma_map(int fd, uint64_t iova, uint64_t vaddr, uint64_t size) {
    std::lock_guard lock(dma_mutex);
    ++map_calls;
    SimContainer* c = container(fd);
    if (!c) return kerr("VFIO_IOMMU_MAP_DMA", EBADF);
    if (!c->iommu) return kerr("VFIO_IOMMU_MAP_DMA", EINVAL);
    if (size == 0 || ((size | iova | vaddr) & (kPage - 1)) || iova + size - 1 < iova || vaddr + size - 1 < vaddr)
        return kerr("VFIO_IOMMU_MAP_DMA", EINVAL);
    auto next = c->mappings.lower_bound(iova);
    if (next != c->mappings.end() && next->first < iova + size) return kerr("VFIO_IOMMU_MAP_DMA", EEXIST);
    if (next != c->mappings.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second.size > iova) return kerr("VFIO_IOMMU_MAP_DMA", EEXIST);
    }
    if (c->mappings.size() >= dma_entry_limit) return kerr("VFIO_IOMMU_MAP_DMA", ENOSPC);
    if (locked_bytes + size > locked_limit) return kerr("VFIO_IOMMU_MAP_DMA", ENOMEM);
    // The kernel pins (and so populates) what it maps: a later discard of a
    // still-mapped page shows up as a mapped page that is no longer resident.
    if (populate_on_map) {
        constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE (Linux 5.14)
        if (::madvise(reinterpret_cast<void*>(vaddr), size, kPopulateWrite) != 0)
            return kerr("VFIO_IOMMU_MAP_DMA (pinning)", EFAULT);
    }
    locked_bytes += size;
    c->mappings.emplace(iova, SimMapping{size, vaddr});
    return ok();
}

// vfio_dma_do_unmap (v2): misaligned or empty -> EINVAL; a range that starts or ends
// inside a mapping -> EINVAL; otherwise every mapping inside goes, 0 bytes is fine.
Result<uint64_t> SimVfio::dma_unmap(int fd, uint64_t iova, uint64_t size) {
    std::lock_guard lock(dma_mutex);
    ++unmap_calls;
    SimContainer* c = container(fd);
    if (!c) return kerr("VFIO_IOMMU_UNMAP_DMA", EBADF);
    if (!c->iommu) return kerr("VFIO_IOMMU_UNMAP_DMA", EINVAL);
    if ((iova | size) & (kPage - 1) || iova + size - 1 < iova) return kerr("VFIO_IOMMU_UNMAP_DMA", EINVAL);
    uint64_t end = iova + size;
    auto covering = [&](uint64_t addr) -> const std::pair<const uint64_t, SimMapping>* {
        auto it = c->mappings.upper_bound(addr);
        if (it == c->mappings.begin()) return nullptr;
        --it;
        return addr < it->first + it->second.size ? &*it : nullptr;
    };
    if (auto m = covering(iova); m && m->first != iova) return kerr("VFIO_IOMMU_UNMAP_DMA", EINVAL);
    if (auto m = covering(end - 1); m && m->first + m->second.size != end) return kerr("VFIO_IOMMU_UNMAP_DMA", EINVAL);
    uint64_t unmapped = 0;
    for (auto it = c->mappings.lower_bound(iova); it != c->mappings.end() && it->first < end;) {
        unmapped += it->second.size;
        it = c->mappings.erase(it);
    }
    locked_bytes -= unmapped;
    return unmapped;
}

Result<uint32_t> SimVfio::iommu_group_of(const std::string& address) {
    auto it = functions.find(address);
    if (it == functions.end())
        return Error(fmt::format("/sys/bus/pci/devices/{}/iommu_group: No such file or directory", address), ENOENT);
    return it->second.group;
}

Result<int> SimVfio::open_group(uint32_t id) {
    auto it = groups.find(id);
    if (it == groups.end()) return kerr("open /dev/vfio/N", ENOENT);
    if (it->second.busy || it->second.open) return kerr("open /dev/vfio/N", EBUSY);
    it->second.open = true;
    m_group_fds[m_next_fd] = id;
    return m_next_fd++;
}

Result<uint32_t> SimVfio::group_status(int fd) {
    auto it = m_group_fds.find(fd);
    if (it == m_group_fds.end()) return kerr("VFIO_GROUP_GET_STATUS", EBADF);
    const SimGroup& g = groups.at(it->second);
    return (g.viable ? uint32_t{VFIO_GROUP_FLAGS_VIABLE} : 0u) |
           (g.container >= 0 ? uint32_t{VFIO_GROUP_FLAGS_CONTAINER_SET} : 0u);
}

Result<void> SimVfio::group_set_container(int fd, int cfd) {
    auto it = m_group_fds.find(fd);
    SimContainer* c = container(cfd);
    if (it == m_group_fds.end() || !c) return kerr("VFIO_GROUP_SET_CONTAINER", EBADF);
    SimGroup& g = groups.at(it->second);
    if (!g.viable) return kerr("VFIO_GROUP_SET_CONTAINER", EPERM);
    if (g.container >= 0) return kerr("VFIO_GROUP_SET_CONTAINER", EBUSY);
    g.container = cfd;
    c->groups.insert(it->second);
    return ok();
}

Result<void> SimVfio::group_unset_container(int fd) {
    auto it = m_group_fds.find(fd);
    if (it == m_group_fds.end()) return kerr("VFIO_GROUP_UNSET_CONTAINER", EBADF);
    SimGroup& g = groups.at(it->second);
    if (g.container < 0) return kerr("VFIO_GROUP_UNSET_CONTAINER", EINVAL);
    for (auto& [addr, f] : functions)
        if (f.group == it->second && f.opened) return kerr("VFIO_GROUP_UNSET_CONTAINER", EBUSY);
    SimContainer& c = containers.at(g.container);
    c.groups.erase(it->second);
    if (c.groups.empty()) {  // the last group takes the IOMMU and its mappings with it
        for (auto& [iova, m] : c.mappings) locked_bytes -= m.size;
        c.mappings.clear();
        c.iommu = false;
    }
    g.container = -1;
    return ok();
}

Result<int> SimVfio::group_device(int fd, const std::string& address) {
    auto it = m_group_fds.find(fd);
    if (it == m_group_fds.end()) return kerr("VFIO_GROUP_GET_DEVICE_FD", EBADF);
    SimGroup& g = groups.at(it->second);
    if (g.container < 0 || !containers.at(g.container).iommu) return kerr("VFIO_GROUP_GET_DEVICE_FD", EINVAL);
    auto f = functions.find(address);
    if (f == functions.end() || f->second.group != it->second) return kerr("VFIO_GROUP_GET_DEVICE_FD", ENODEV);
    if (f->second.busy || f->second.opened) return kerr("VFIO_GROUP_GET_DEVICE_FD", EBUSY);
    f->second.opened = true;
    m_device_fds[m_next_fd] = address;
    return m_next_fd++;
}

Result<DeviceInfo> SimVfio::device_info(int fd) {
    if (!device(fd)) return kerr("VFIO_DEVICE_GET_INFO", EBADF);
    return DeviceInfo{VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, VFIO_PCI_NUM_REGIONS, VFIO_PCI_NUM_IRQS};
}

Result<RegionInfo> SimVfio::region_info(int fd, uint32_t index) {
    if (!device(fd)) return kerr("VFIO_DEVICE_GET_REGION_INFO", EBADF);
    if (index >= VFIO_PCI_NUM_REGIONS) return kerr("VFIO_DEVICE_GET_REGION_INFO", EINVAL);
    RegionInfo r{index, 0, 0, uint64_t{index} << kRegionShift};
    uint32_t rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    if (index == VFIO_PCI_BAR0_REGION_INDEX) r = {index, rw | VFIO_REGION_INFO_FLAG_MMAP, kBar0Size, r.offset};
    if (index == VFIO_PCI_BAR2_REGION_INDEX)
        r = {index, rw | (device(fd)->bar2_mmap ? uint32_t{VFIO_REGION_INFO_FLAG_MMAP} : 0u), kBar2Size, r.offset};
    if (index == VFIO_PCI_CONFIG_REGION_INDEX) r = {index, rw, 256, r.offset};
    return r;
}

Result<IrqInfo> SimVfio::irq_info(int fd, uint32_t index) {
    SimFunction* f = device(fd);
    if (!f) return kerr("VFIO_DEVICE_GET_IRQ_INFO", EBADF);
    if (index >= VFIO_PCI_NUM_IRQS) return kerr("VFIO_DEVICE_GET_IRQ_INFO", EINVAL);
    return IrqInfo{index, VFIO_IRQ_INFO_EVENTFD, irq_count(*f, index)};
}

// vfio_pci_set_irqs_ioctl and its INTx/MSI handlers, for the TRIGGER and UNMASK
// actions the VMM uses.
Result<void> SimVfio::set_irqs(int fd, uint32_t index, uint32_t action, uint32_t start,
                               std::span<const int32_t> eventfds) {
    SimFunction* f = device(fd);
    if (!f) return kerr("VFIO_DEVICE_SET_IRQS", EBADF);
    uint32_t count = VMM_TRY(irq_info(fd, index)).count;
    if (start >= count || eventfds.size() > count - start) return kerr("VFIO_DEVICE_SET_IRQS", EINVAL);
    const bool active = f->irqs.count(index) != 0;
    if (eventfds.empty()) {  // DATA_NONE, count 0
        if (action != VFIO_IRQ_SET_ACTION_TRIGGER) return ok();
        if (!active) return kerr("VFIO_DEVICE_SET_IRQS", EINVAL);  // only the running type can be turned off
        f->irqs.erase(index);
        f->irqs.erase(index + 100);
        return ok();
    }
    // vfio-pci allows one interrupt type at a time.
    if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
        for (auto& [other, fds] : f->irqs)
            if (other < 100 && other != index) return kerr("VFIO_DEVICE_SET_IRQS", EINVAL);
    if (index == VFIO_PCI_MSI_IRQ_INDEX && action == VFIO_IRQ_SET_ACTION_TRIGGER) {
        if (!active) {  // vfio_msi_enable(start + count): the host allocates that many, fixed until disabled
            if (f->msi_enable_errno) return kerr("VFIO_DEVICE_SET_IRQS", f->msi_enable_errno);
            f->irqs[index].assign(start + eventfds.size(), -1);
        } else if (start + eventfds.size() > f->irqs[index].size()) {
            return kerr("VFIO_DEVICE_SET_IRQS", EINVAL);  // vfio_msi_set_block past the enabled vectors
        }
    }
    uint32_t key = action == VFIO_IRQ_SET_ACTION_UNMASK ? index + 100 : index;  // resamplefd kept apart
    auto& slots = f->irqs[key];
    if (index != VFIO_PCI_MSI_IRQ_INDEX) slots.resize(count, -1);
    for (size_t i = 0; i < eventfds.size(); ++i) slots[start + i] = eventfds[i];
    return ok();
}

Result<void> SimVfio::reset(int fd) {
    SimFunction* f = device(fd);
    if (!f) return kerr("VFIO_DEVICE_RESET", EBADF);
    ++f->resets;
    return ok();
}

PageBytes* SimVfio::region(SimFunction& f, uint64_t offset, uint64_t len, uint64_t& at) {
    uint64_t index = offset >> kRegionShift;
    at = offset & ((1ull << kRegionShift) - 1);
    PageBytes* r = index == VFIO_PCI_BAR0_REGION_INDEX ? &f.bar0
                                : index == VFIO_PCI_BAR2_REGION_INDEX ? &f.bar2 : nullptr;
    if (!r || at > r->size() || len > r->size() - at) return nullptr;
    return r;
}

Result<void> SimVfio::region_read(int fd, uint64_t offset, std::span<std::byte> data) {
    SimFunction* f = device(fd);
    if (!f) return kerr("VFIO region read", EBADF);
    if (offset >> kRegionShift == VFIO_PCI_CONFIG_REGION_INDEX) {
        uint64_t at = offset & 0xff;
        if ((offset & ((1ull << kRegionShift) - 1)) + data.size() > 256) return kerr("VFIO region read", EINVAL);
        std::memcpy(data.data(), f->config.data() + at, data.size());
        return ok();
    }
    uint64_t at = 0;
    auto* r = region(*f, offset, data.size(), at);
    if (!r) return kerr("VFIO region read", EINVAL);
    std::memcpy(data.data(), r->data() + at, data.size());
    return ok();
}

Result<void> SimVfio::region_write(int fd, uint64_t offset, std::span<const std::byte> data) {
    SimFunction* f = device(fd);
    if (!f) return kerr("VFIO region write", EBADF);
    if (offset >> kRegionShift == VFIO_PCI_CONFIG_REGION_INDEX) {
        uint64_t at = offset & ((1ull << kRegionShift) - 1);
        if (at + data.size() > 256) return kerr("VFIO region write", EINVAL);
        // Writable here: command (low byte) and interrupt line; the rest is the device's.
        for (size_t i = 0; i < data.size(); ++i) f->config_written.insert(uint16_t(at + i));
        for (size_t i = 0; i < data.size(); ++i)
            if (at + i == 0x04 || at + i == 0x05 || at + i == 0x3c) f->config[at + i] = std::to_integer<uint8_t>(data[i]);
        return ok();
    }
    uint64_t at = 0;
    auto* r = region(*f, offset, data.size(), at);
    if (!r) return kerr("VFIO region write", EINVAL);
    std::memcpy(r->data() + at, data.data(), data.size());
    return ok();
}

Result<void*> SimVfio::region_mmap(int fd, uint64_t offset, uint64_t size) {
    SimFunction* f = device(fd);
    if (!f) return kerr("mmap of VFIO region", EBADF);
    uint64_t index = offset >> kRegionShift;
    if (index != VFIO_PCI_BAR0_REGION_INDEX && !(index == VFIO_PCI_BAR2_REGION_INDEX && f->bar2_mmap))
        return kerr("mmap of VFIO region", EINVAL);
    uint64_t at = 0;
    auto* r = region(*f, offset, size, at);
    if (!r) return kerr("mmap of VFIO region", EINVAL);
    return static_cast<void*>(r->data() + at);
}

void SimVfio::close(int fd) {
    if (auto it = m_group_fds.find(fd); it != m_group_fds.end()) {
        groups.at(it->second).open = false;
        m_group_fds.erase(it);
    } else if (auto d = m_device_fds.find(fd); d != m_device_fds.end()) {
        functions.at(d->second).opened = false;
        functions.at(d->second).irqs.clear();  // closing the device fd tears its interrupts down
        m_device_fds.erase(d);
    } else {
        containers.erase(fd);
    }
}

}  // namespace vmm::vfio::sim
