// The real VFIO backend: each call is one ioctl, pread/pwrite or mmap on the fd
// the caller passes; it keeps no state besides the sysfs root.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <filesystem>
#include <vector>

#include "vmm/vfio/vfio_backend.h"

namespace vmm::vfio {

namespace {

class LinuxVfioBackend final : public VfioBackend {
public:
    explicit LinuxVfioBackend(std::string sysfs_root) : m_sysfs(std::move(sysfs_root)) {}

    Result<int> open_container() override { return open_path("/dev/vfio/vfio"); }

    Result<int> api_version(int container) override {
        int v = ::ioctl(container, VFIO_GET_API_VERSION);
        if (v < 0) return Error::from_errno("VFIO_GET_API_VERSION");
        return v;
    }

    Result<bool> check_extension(int container, uint32_t extension) override {
        int v = ::ioctl(container, VFIO_CHECK_EXTENSION, static_cast<unsigned long>(extension));
        if (v < 0) return Error::from_errno("VFIO_CHECK_EXTENSION");
        return v > 0;
    }

    Result<void> set_iommu(int container, uint32_t type) override {
        if (::ioctl(container, VFIO_SET_IOMMU, static_cast<unsigned long>(type)) < 0)
            return Error::from_errno("VFIO_SET_IOMMU");
        return ok();
    }

    Result<void> dma_map(int container, uint64_t iova, uint64_t vaddr, uint64_t size) override {
        vfio_iommu_type1_dma_map map{};
        map.argsz = sizeof(map);
        map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
        map.vaddr = vaddr;
        map.iova = iova;
        map.size = size;
        if (::ioctl(container, VFIO_IOMMU_MAP_DMA, &map) < 0) return Error::from_errno("VFIO_IOMMU_MAP_DMA");
        return ok();
    }

    Result<uint64_t> dma_unmap(int container, uint64_t iova, uint64_t size) override {
        vfio_iommu_type1_dma_unmap unmap{};
        unmap.argsz = sizeof(unmap);
        unmap.iova = iova;
        unmap.size = size;
        if (::ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0) return Error::from_errno("VFIO_IOMMU_UNMAP_DMA");
        return uint64_t{unmap.size};
    }

    Result<uint32_t> iommu_group_of(const std::string& pci_address) override {
        if (pci_address.empty() || pci_address.find('/') != std::string::npos || pci_address[0] == '.')
            return Error(fmt::format("'{}' is not a PCI address", pci_address), EINVAL);
        std::filesystem::path link = std::filesystem::path(m_sysfs) / "bus/pci/devices" / pci_address / "iommu_group";
        std::error_code ec;
        auto target = std::filesystem::read_symlink(link, ec);
        if (ec) return Error(fmt::format("{}: {}", link.string(), ec.message()), ec.value());
        try {
            size_t used = 0;
            std::string name = target.filename().string();
            unsigned long n = std::stoul(name, &used);
            if (used != name.size() || n > UINT32_MAX) throw std::invalid_argument(name);
            return static_cast<uint32_t>(n);
        } catch (const std::exception&) {
            return Error(fmt::format("{}: unexpected target {}", link.string(), target.string()), EINVAL);
        }
    }

    Result<int> open_group(uint32_t group) override { return open_path(fmt::format("/dev/vfio/{}", group)); }

    Result<uint32_t> group_status(int group) override {
        vfio_group_status status{};
        status.argsz = sizeof(status);
        if (::ioctl(group, VFIO_GROUP_GET_STATUS, &status) < 0) return Error::from_errno("VFIO_GROUP_GET_STATUS");
        return status.flags;
    }

    Result<void> group_set_container(int group, int container) override {
        if (::ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) < 0)
            return Error::from_errno("VFIO_GROUP_SET_CONTAINER");
        return ok();
    }

    Result<void> group_unset_container(int group) override {
        if (::ioctl(group, VFIO_GROUP_UNSET_CONTAINER) < 0) return Error::from_errno("VFIO_GROUP_UNSET_CONTAINER");
        return ok();
    }

    Result<int> group_device(int group, const std::string& pci_address) override {
        int fd = ::ioctl(group, VFIO_GROUP_GET_DEVICE_FD, pci_address.c_str());
        if (fd < 0) return Error::from_errno("VFIO_GROUP_GET_DEVICE_FD");
        return fd;
    }

    Result<DeviceInfo> device_info(int device) override {
        vfio_device_info info{};
        info.argsz = sizeof(info);
        if (::ioctl(device, VFIO_DEVICE_GET_INFO, &info) < 0) return Error::from_errno("VFIO_DEVICE_GET_INFO");
        return DeviceInfo{info.flags, info.num_regions, info.num_irqs};
    }

    Result<RegionInfo> region_info(int device, uint32_t index) override {
        vfio_region_info info{};
        info.argsz = sizeof(info);
        info.index = index;
        if (::ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &info) < 0)
            return Error::from_errno(fmt::format("VFIO_DEVICE_GET_REGION_INFO {}", index));
        return RegionInfo{index, info.flags, info.size, info.offset};
    }

    Result<IrqInfo> irq_info(int device, uint32_t index) override {
        vfio_irq_info info{};
        info.argsz = sizeof(info);
        info.index = index;
        if (::ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &info) < 0)
            return Error::from_errno(fmt::format("VFIO_DEVICE_GET_IRQ_INFO {}", index));
        return IrqInfo{index, info.flags, info.count};
    }

    Result<void> set_irqs(int device, uint32_t index, uint32_t action, uint32_t start,
                          std::span<const int32_t> eventfds) override {
        // vfio_irq_set ends in a flexible array of s32 eventfds.
        size_t bytes = sizeof(vfio_irq_set) + eventfds.size_bytes();
        std::vector<uint64_t> buf((bytes + 7) / 8, 0);
        auto* set = reinterpret_cast<vfio_irq_set*>(buf.data());
        if (set == nullptr) return Error::msg("VFIO_DEVICE_SET_IRQS: no buffer");  // never: bytes >= header
        set->argsz = static_cast<uint32_t>(bytes);
        set->flags = action | (eventfds.empty() ? VFIO_IRQ_SET_DATA_NONE : VFIO_IRQ_SET_DATA_EVENTFD);
        set->index = index;
        set->start = start;
        set->count = static_cast<uint32_t>(eventfds.size());
        if (!eventfds.empty()) std::memcpy(set->data, eventfds.data(), eventfds.size_bytes());
        if (::ioctl(device, VFIO_DEVICE_SET_IRQS, set) < 0)
            return Error::from_errno(fmt::format("VFIO_DEVICE_SET_IRQS index {}", index));
        return ok();
    }

    Result<void> reset(int device) override {
        if (::ioctl(device, VFIO_DEVICE_RESET) < 0) return Error::from_errno("VFIO_DEVICE_RESET");
        return ok();
    }

    Result<void> region_read(int device, uint64_t offset, std::span<std::byte> data) override {
        ssize_t n = ::pread(device, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0) return Error::from_errno("VFIO region read");
        if (static_cast<size_t>(n) != data.size()) return Error("VFIO region read: short read", EIO);
        return ok();
    }

    Result<void> region_write(int device, uint64_t offset, std::span<const std::byte> data) override {
        ssize_t n = ::pwrite(device, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0) return Error::from_errno("VFIO region write");
        if (static_cast<size_t>(n) != data.size()) return Error("VFIO region write: short write", EIO);
        return ok();
    }

    Result<void*> region_mmap(int device, uint64_t offset, uint64_t size) override {
        void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, device, static_cast<off_t>(offset));
        if (p == MAP_FAILED) return Error::from_errno("mmap of VFIO region");
        return p;
    }

    void region_munmap(void* host, uint64_t size) override { ::munmap(host, size); }

    void close(int fd) override {
        if (fd >= 0) ::close(fd);
    }

private:
    static Result<int> open_path(const std::string& path) {
        int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0) return Error::from_errno(fmt::format("open {}", path));
        return fd;
    }

    std::string m_sysfs;
};

}  // namespace

std::shared_ptr<VfioBackend> make_linux_vfio_backend(std::string sysfs_root) {
    return std::make_shared<LinuxVfioBackend>(std::move(sysfs_root));
}

}  // namespace vmm::vfio
