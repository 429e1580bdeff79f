// The VFIO operations the VMM needs, behind an interface: the development hosts
// have no IOMMU and no assignable device, so tests run the same code paths over a
// faithful simulation of the kernel (tests/support/vfio_sim/sim_vfio.h), and the real
// implementation (LinuxVfioBackend) issues the linux/vfio.h ioctls. Handles are
// file descriptors (the simulation hands out its own numbers); errors carry the
// kernel's errno so callers can explain them.
#pragma once

#include <linux/vfio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "common/result.h"

namespace vmm::vfio {

struct DeviceInfo {
    uint32_t flags = 0;  // VFIO_DEVICE_FLAGS_*
    uint32_t num_regions = 0;
    uint32_t num_irqs = 0;
};

struct RegionInfo {
    uint32_t index = 0;
    uint32_t flags = 0;   // VFIO_REGION_INFO_FLAG_{READ,WRITE,MMAP}
    uint64_t size = 0;
    uint64_t offset = 0;  // of the region in the device fd
};

struct IrqInfo {
    uint32_t index = 0;
    uint32_t flags = 0;  // VFIO_IRQ_INFO_*
    uint32_t count = 0;
};

class VfioBackend {
public:
    virtual ~VfioBackend() = default;

    // Container (/dev/vfio/vfio).
    [[nodiscard]] virtual Result<int> open_container() = 0;
    [[nodiscard]] virtual Result<int> api_version(int container) = 0;
    [[nodiscard]] virtual Result<bool> check_extension(int container, uint32_t extension) = 0;
    [[nodiscard]] virtual Result<void> set_iommu(int container, uint32_t type) = 0;
    // VFIO_IOMMU_MAP_DMA with READ|WRITE.
    [[nodiscard]] virtual Result<void> dma_map(int container, uint64_t iova, uint64_t vaddr, uint64_t size) = 0;
    // VFIO_IOMMU_UNMAP_DMA; returns the bytes the kernel unmapped.
    [[nodiscard]] virtual Result<uint64_t> dma_unmap(int container, uint64_t iova, uint64_t size) = 0;

    // Group (/dev/vfio/<n>); a PCI address ("0000:01:00.0") names its group through sysfs.
    [[nodiscard]] virtual Result<uint32_t> iommu_group_of(const std::string& pci_address) = 0;
    [[nodiscard]] virtual Result<int> open_group(uint32_t group) = 0;
    [[nodiscard]] virtual Result<uint32_t> group_status(int group) = 0;  // VFIO_GROUP_FLAGS_*
    [[nodiscard]] virtual Result<void> group_set_container(int group, int container) = 0;
    [[nodiscard]] virtual Result<void> group_unset_container(int group) = 0;
    [[nodiscard]] virtual Result<int> group_device(int group, const std::string& pci_address) = 0;

    // Device.
    [[nodiscard]] virtual Result<DeviceInfo> device_info(int device) = 0;
    [[nodiscard]] virtual Result<RegionInfo> region_info(int device, uint32_t index) = 0;
    [[nodiscard]] virtual Result<IrqInfo> irq_info(int device, uint32_t index) = 0;
    // VFIO_DEVICE_SET_IRQS with DATA_EVENTFD when `eventfds` is given (-1 detaches one
    // vector), DATA_NONE with count 0 to disable the index.
    [[nodiscard]] virtual Result<void> set_irqs(int device, uint32_t index, uint32_t action, uint32_t start,
                                                std::span<const int32_t> eventfds) = 0;
    [[nodiscard]] virtual Result<void> reset(int device) = 0;
    // pread/pwrite at a region's offset; short transfers are errors.
    [[nodiscard]] virtual Result<void> region_read(int device, uint64_t offset, std::span<std::byte> data) = 0;
    [[nodiscard]] virtual Result<void> region_write(int device, uint64_t offset, std::span<const std::byte> data) = 0;
    [[nodiscard]] virtual Result<void*> region_mmap(int device, uint64_t offset, uint64_t size) = 0;
    virtual void region_munmap(void* host, uint64_t size) = 0;

    virtual void close(int fd) = 0;
};

// Issues the ioctls on /dev/vfio; sysfs under `sysfs_root` ("/sys" outside tests).
std::shared_ptr<VfioBackend> make_linux_vfio_backend(std::string sysfs_root = "/sys");

}  // namespace vmm::vfio
