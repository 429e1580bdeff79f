#include "vmm/vfio/vfio_container.h"

#include <unistd.h>

#include <algorithm>

namespace vmm::vfio {

namespace {
const uint64_t kPage = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

Result<std::shared_ptr<VfioContainer>> VfioContainer::open(std::shared_ptr<VfioBackend> backend,
                                                           const memory::GuestMemory& memory, uint64_t granule) {
    if (!backend) return Error::msg("VFIO: no backend");
    if (granule < kPage || granule % kPage != 0)
        return Error::msg("VFIO: DMA granule {:#x} is not a multiple of the page size", granule);
    int fd = VMM_TRY_CTX(backend->open_container(), "VFIO container");
    auto close_on_error = [&](Error e) {
        backend->close(fd);
        return e;
    };
    auto version = backend->api_version(fd);
    if (!version) return close_on_error(version.error().context("VFIO container"));
    if (*version != VFIO_API_VERSION)
        return close_on_error(Error::msg("VFIO container: API version {} (expected {})", *version, VFIO_API_VERSION));
    auto type1 = backend->check_extension(fd, VFIO_TYPE1v2_IOMMU);
    if (!type1) return close_on_error(type1.error().context("VFIO container"));
    if (!*type1) return close_on_error(Error("VFIO container: the kernel lacks the type1 v2 IOMMU", ENOTSUP));
    return std::shared_ptr<VfioContainer>(new VfioContainer(std::move(backend), memory, granule, fd));
}

VfioContainer::~VfioContainer() {
    for (auto& [id, group] : m_groups) {
        (void)m_backend->group_unset_container(group);
        m_backend->close(group);
    }
    m_backend->close(m_fd);
}

Result<int> VfioContainer::attach_group(uint32_t group) {
    std::lock_guard lock(m_mutex);
    if (auto it = m_groups.find(group); it != m_groups.end()) return it->second;
    auto fd = m_backend->open_group(group);
    if (!fd) {
        int e = fd.error().errno_value();
        if (e == ENOENT) return Error(fmt::format("VFIO group {} does not exist (is the device bound to vfio-pci?)", group), e);
        if (e == EBUSY) return Error(fmt::format("VFIO group {} is in use by another process", group), e);
        return fd.error().context(fmt::format("VFIO group {}", group));
    }
    auto fail = [&](Error e) {
        m_backend->close(*fd);
        return e;
    };
    auto status = m_backend->group_status(*fd);
    if (!status) return fail(status.error().context(fmt::format("VFIO group {}", group)));
    if (!(*status & VFIO_GROUP_FLAGS_VIABLE))
        return fail(Error(fmt::format("VFIO group {} is not viable: every device in it must be bound to vfio-pci "
                                      "(or to no driver)", group), EPERM));
    if (auto s = m_backend->group_set_container(*fd, m_fd); !s) {
        if (s.error().errno_value() == EBUSY)
            return fail(Error(fmt::format("VFIO group {} is already assigned (attached to another container)", group),
                              EBUSY));
        return fail(s.error().context(fmt::format("VFIO group {}", group)));
    }
    if (!m_iommu_set) {
        if (auto s = m_backend->set_iommu(m_fd, VFIO_TYPE1v2_IOMMU); !s) {
            (void)m_backend->group_unset_container(*fd);
            return fail(s.error().context("VFIO container: selecting the type1 v2 IOMMU"));
        }
        m_iommu_set = true;
    }
    m_groups.emplace(group, *fd);
    return *fd;
}

Result<void> VfioContainer::claim_device(const std::string& pci_address) {
    std::lock_guard lock(m_mutex);
    if (!m_claimed.insert(pci_address).second)
        return Error(fmt::format("PCI device {} is already assigned to this VM", pci_address), EBUSY);
    return ok();
}

void VfioContainer::release_device(const std::string& pci_address) {
    std::lock_guard lock(m_mutex);
    m_claimed.erase(pci_address);
}

Result<uint64_t> VfioContainer::host_address(memory::GuestAddress addr, uint64_t len) const {
    for (const memory::GuestRegion& r : m_memory.regions()) {
        uint64_t start = r.start().raw;
        if (addr.raw >= start && addr.raw - start < r.size() && len <= r.size() - (addr.raw - start))
            return r.host_address_for_kvm() + (addr.raw - start);
    }
    return Error::msg("VFIO DMA: [{:#x}, +{:#x}) is not inside one guest RAM region", addr.raw, len);
}

Result<void> VfioContainer::map_all_ram() {
    for (const memory::GuestRegion& r : m_memory.regions()) VMM_TRY(map(r.start(), r.size()));
    return ok();
}

Result<void> VfioContainer::map(memory::GuestAddress addr, uint64_t len) {
    if (len == 0 || addr.raw % kPage != 0 || len % kPage != 0)
        return Error(fmt::format("VFIO DMA map [{:#x}, +{:#x}): not page-aligned", addr.raw, len), EINVAL);
    uint64_t host = VMM_TRY(host_address(addr, len));
    uint64_t done = 0;
    while (done < len) {
        uint64_t iova = addr.raw + done;
        uint64_t piece = std::min(len - done, m_granule - iova % m_granule);
        ++m_map_calls;
        if (auto m = m_backend->dma_map(m_fd, iova, host + done, piece); !m) {
            // Leave nothing half-mapped: the caller treats the range as unmapped.
            if (done > 0) {
                ++m_unmap_calls;
                if (auto u = m_backend->dma_unmap(m_fd, addr.raw, done)) m_mapped_bytes -= *u;
            }
            return m.error().context(fmt::format("VFIO DMA map [{:#x}, +{:#x})", iova, piece));
        }
        m_mapped_bytes += piece;
        done += piece;
    }
    return ok();
}

Result<void> VfioContainer::unmap(memory::GuestAddress addr, uint64_t len) {
    if (len == 0 || addr.raw % kPage != 0 || len % kPage != 0)
        return Error(fmt::format("VFIO DMA unmap [{:#x}, +{:#x}): not page-aligned", addr.raw, len), EINVAL);
    ++m_unmap_calls;
    uint64_t unmapped = VMM_TRY_CTX(m_backend->dma_unmap(m_fd, addr.raw, len),
                                    fmt::format("VFIO DMA unmap [{:#x}, +{:#x})", addr.raw, len));
    m_mapped_bytes -= unmapped;
    if (unmapped != len)
        return Error(fmt::format("VFIO DMA unmap [{:#x}, +{:#x}): only {:#x} bytes were mapped", addr.raw, len,
                                 unmapped), ENOENT);
    return ok();
}

DmaStats VfioContainer::stats() const {
    return {m_map_calls.load(), m_unmap_calls.load(), m_mapped_bytes.load()};
}

}  // namespace vmm::vfio
