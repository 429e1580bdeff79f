// A simulation of the kernel's VFIO for tests: the type1 v2 container (mapping
// table with the kernel's alignment, overlap, split, entry-limit and locked-memory
// rules and error codes), groups (viability, other users, container binding) and
// a vfio-pci function: config space, BAR0 64-bit mmap-able 64 KiB, BAR2 32-bit
// 16 KiB (not mmap-able unless bar2_mmap) holding the MSI-X table (16 vectors at 0)
// and PBA (at 0x2000), capabilities PM (0x40) -> MSI-X (0x50) -> MSI (0x60: 64-bit,
// per-vector masks, 4 vectors). Interrupt counts follow the capabilities and
// SET_IRQS follows vfio-pci's rules: one type at a time, MSI/MSI-X vectors
// allocated at enable, disabling an index that is not on is EINVAL.
#pragma once

#include <cstdlib>
#include <cstring>
#include <new>
#include <map>
#include <mutex>
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
inline constexpr uint16_t kMsiCap = 0x60;
inline constexpr uint32_t kMsiVectors = 4;
inline constexpr uint16_t kMsiControl = kMsiCap + 2;
inline constexpr uint16_t kMsiAddressLo = kMsiCap + 4;
inline constexpr uint16_t kMsiAddressHi = kMsiCap + 8;
inline constexpr uint16_t kMsiData = kMsiCap + 12;
inline constexpr uint16_t kMsiMask = kMsiCap + 16;
inline constexpr uint16_t kMsiPending = kMsiCap + 20;

// BAR memory as the kernel's mmap gives it: page-aligned (KVM refuses a memory
// slot whose host address is not).
template <typename T>
struct PageAlignedAllocator {
    using value_type = T;
    PageAlignedAllocator() = default;
    template <typename U>
    PageAlignedAllocator(const PageAlignedAllocator<U>&) {}
    T* allocate(size_t n) {
        size_t bytes = (n * sizeof(T) + kPage - 1) / kPage * kPage;
        void* p = std::aligned_alloc(kPage, bytes);
        if (!p) throw std::bad_alloc();
        return static_cast<T*>(p);
    }
    void deallocate(T* p, size_t) { std::free(p); }
    bool operator==(const PageAlignedAllocator&) const { return true; }
};
using PageBytes = std::vector<std::byte, PageAlignedAllocator<std::byte>>;

struct SimFunction {
    SimFunction();
    // Rewrites the MSI capability's control word (its size follows: data at 8 or 12,
    // masks and pending bits only with per-vector masking).
    void set_msi(bool is64, bool per_vector_mask, uint8_t log2_vectors);
    uint32_t group = 0;
    bool opened = false;
    bool busy = false;  // opened by another process
    bool bar2_mmap = false;  // the kernel flags BAR2 (MSI-X table) MMAP, as since Linux 4.16 it may
    int msi_enable_errno = 0;  // pci_alloc_irq_vectors failing (EINVAL: pci=nomsi, ENOSPC: out of vectors)
    int resets = 0;
    std::vector<uint8_t> config;
    std::set<uint16_t> config_written;  // every config byte offset the user wrote, device-writable or not
    PageBytes bar0, bar2;
    std::map<uint32_t, std::vector<int32_t>> irqs;  // index -> eventfds (-1 unset); index + 100: resamplefd
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
    // The kernel serialises a container's MAP/UNMAP (its iommu lock); so does the
    // simulation, since installs (vCPU threads) and reclaims (VMM thread) overlap.
    mutable std::mutex dma_mutex;
    uint64_t dma_entry_limit = 65535;
    bool populate_on_map = false;  // pin like the kernel: populate vaddr at MAP_DMA
    uint64_t map_calls = 0, unmap_calls = 0;  // under dma_mutex
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
    PageBytes* region(SimFunction& f, uint64_t offset, uint64_t len, uint64_t& at);

    int m_next_fd = 100;
    std::map<int, uint32_t> m_group_fds;        // fd -> group id
    std::map<int, std::string> m_device_fds;    // fd -> address
};

}  // namespace vmm::vfio::sim
