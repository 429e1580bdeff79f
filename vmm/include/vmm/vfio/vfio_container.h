// A VFIO container with the type1 (v2) IOMMU, and the DmaMapper the HyperAlloc
// balloon drives: IOVA = guest-physical address, host address from GuestMemory.
//
// Ranges are mapped in pieces that never cross a `granule` boundary (2 MiB, the
// balloon's frame): type1 v2 refuses to unmap part of a mapping, so a reclaimed
// frame must be a whole number of mappings. An unmap of a merged range is one
// ioctl (the kernel removes every mapping inside it). 2 MiB pieces stay within the
// default dma_entry_limit (65535) up to 127 GiB of RAM.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "common/result.h"
#include "memory/dma_mapper.h"
#include "memory/guest_memory.h"
#include "vmm/vfio/vfio_backend.h"

namespace vmm::vfio {

struct DmaStats {
    uint64_t map_calls = 0;     // VFIO_IOMMU_MAP_DMA ioctls
    uint64_t unmap_calls = 0;   // VFIO_IOMMU_UNMAP_DMA ioctls
    uint64_t mapped_bytes = 0;  // what the kernel has pinned for this container
};

class VfioContainer final : public memory::DmaMapper {
public:
    static constexpr uint64_t kDefaultGranule = 2ull << 20;

    // `memory` must outlive the container (the VM owns both).
    [[nodiscard]] static Result<std::shared_ptr<VfioContainer>> open(std::shared_ptr<VfioBackend> backend,
                                                                     const memory::GuestMemory& memory,
                                                                     uint64_t granule = kDefaultGranule);
    ~VfioContainer() override;
    VfioContainer(const VfioContainer&) = delete;
    VfioContainer& operator=(const VfioContainer&) = delete;

    // Opens the group (once), checks it is viable, adds it to the container and,
    // for the first group, selects the type1 v2 IOMMU. Returns the group fd.
    [[nodiscard]] Result<int> attach_group(uint32_t group);
    // Marks a PCI address as assigned; a second claim is an error.
    [[nodiscard]] Result<void> claim_device(const std::string& pci_address);
    void release_device(const std::string& pci_address);

    // Maps all of guest RAM: done before any device can DMA, and left so until the
    // balloon knows the guest's zones and starts unmapping reclaimed frames.
    [[nodiscard]] Result<void> map_all_ram();

    [[nodiscard]] Result<void> map(memory::GuestAddress addr, uint64_t len) override;
    [[nodiscard]] Result<void> unmap(memory::GuestAddress addr, uint64_t len) override;

    DmaStats stats() const;
    VfioBackend& backend() { return *m_backend; }
    int fd() const { return m_fd; }

private:
    VfioContainer(std::shared_ptr<VfioBackend> backend, const memory::GuestMemory& memory, uint64_t granule, int fd)
        : m_backend(std::move(backend)), m_memory(memory), m_granule(granule), m_fd(fd) {}
    [[nodiscard]] Result<uint64_t> host_address(memory::GuestAddress addr, uint64_t len) const;

    std::shared_ptr<VfioBackend> m_backend;
    const memory::GuestMemory& m_memory;
    const uint64_t m_granule;
    const int m_fd;
    bool m_iommu_set = false;

    mutable std::mutex m_mutex;  // groups and claims; DMA calls are serialised by the kernel
    std::map<uint32_t, int> m_groups;
    std::set<std::string> m_claimed;
    std::atomic<uint64_t> m_map_calls{0};
    std::atomic<uint64_t> m_unmap_calls{0};
    std::atomic<uint64_t> m_mapped_bytes{0};
};

}  // namespace vmm::vfio
