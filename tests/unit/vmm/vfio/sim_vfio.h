// A simulation of the kernel's VFIO for tests: the type1 v2 container (mapping
// table with the kernel's alignment, overlap, split, entry-limit and locked-memory
// rules and error codes), groups (viability, other users, container binding) and
// a vfio-pci function: config space, BAR0 64-bit mmap-able 64 KiB, BAR2 32-bit
// trapped 16 KiB holding the MSI-X table (16 vectors at 0) and PBA (at 0x2000).
#pragma once

#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "vmm/vfio/vfio_backend.h"

namespace vmm::vfio::sim {

inline constexpr uint64_t kPage = 4096;
inline constexpr uint64_t kBar0Size = 64 * 1024;
inline constexpr uint64_t kBar2Size = 16 * 1024;
inline constexpr uint32_t kMsixVectors = 16;
inline constexpr uint32_t kPbaOffset = 0x2000;
inline constexpr uint16_t kMsixCap = 0x50;

struct SimFunction {
    SimFunction();
    uint32_t group = 0;
    bool opened = false;
    bool busy = false;  // opened by another process
    int resets = 0;
    std::vector<uint8_t> config;
    std::vector<std::byte> bar0, bar2;
    std::map<uint32_t, std::vector<int32_t>> irqs;  // index -> eventfds (-1 unset)
};

struct SimGroup {
    bool viable = true;
    bool busy = false;  // opened by another process
    bool open = false;
    int container = -1;
};

struct SimMapping {
    uint64_t size;
    uint64_t vaddr;
};

struct SimContainer {
    bool iommu = false;
    std::set<uint32_t> groups;
    std::map<uint64_t, SimMapping> mappings;  // iova ->
};

class SimVfio final : public VfioBackend {
public:
    uint64_t dma_entry_limit = 65535;
    uint64_t locked_limit = ~0ull;  // RLIMIT_MEMLOCK
    uint64_t locked_bytes = 0;
    std::map<std::string, SimFunction> functions;
    std::map<uint32_t, SimGroup> groups;
    std::map<int, SimContainer> containers;

    SimFunction& add_function(const std::string& address, uint32_t group);
    uint64_t mapped_bytes(int container) const;

    Result<int> open_container() override;
    Result<int> api_version(int container) override;
    Result<bool> check_extension(int container, uint32_t extension) override;
    Result<void> set_iommu(int container, uint32_t type) override;
    Result<void> dma_map(int container, uint64_t iova, uint64_t vaddr, uint64_t size) override;
    Result<uint64_t> dma_unmap(int container, uint64_t iova, uint64_t size) override;
    Result<uint32_t> iommu_group_of(const std::string& pci_address) override;
    Result<int> open_group(uint32_t group) override;
    Result<uint32_t> group_status(int group) override;
    Result<void> group_set_container(int group, int container) override;
    Result<void> group_unset_container(int group) override;
    Result<int> group_device(int group, const std::string& pci_address) override;
    Result<DeviceInfo> device_info(int device) override;
    Result<RegionInfo> region_info(int device, uint32_t index) override;
    Result<IrqInfo> irq_info(int device, uint32_t index) override;
    Result<void> set_irqs(int device, uint32_t index, uint32_t action, uint32_t start,
                          std::span<const int32_t> eventfds) override;
    Result<void> reset(int device) override;
    Result<void> region_read(int device, uint64_t offset, std::span<std::byte> data) override;
    Result<void> region_write(int device, uint64_t offset, std::span<const std::byte> data) override;
    Result<void*> region_mmap(int device, uint64_t offset, uint64_t size) override;
    void region_munmap(void*, uint64_t) override {}
    void close(int fd) override;

private:
    SimContainer* container(int fd);
    SimFunction* device(int fd);
    std::vector<std::byte>* region(SimFunction& f, uint64_t offset, uint64_t len, uint64_t& at);

    int m_next_fd = 100;
    std::map<int, uint32_t> m_group_fds;        // fd -> group id
    std::map<int, std::string> m_device_fds;    // fd -> address
};

}  // namespace vmm::vfio::sim
