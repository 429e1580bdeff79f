#include "vmm/kvm/kvm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstring>
#include <memory>

#include "flex_array_ioctls.h"

namespace vmm::kvm {

Result<Kvm> Kvm::open(const char* path) {
    UniqueFd fd(::open(path, O_RDWR | O_CLOEXEC));
    if (!fd) return Error::from_errno(fmt::format("open {}", path));
    // SAFETY: KVM_GET_API_VERSION takes no argument.
    int api = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) return Error::msg("{}: KVM API version {} (need {})", path, api, KVM_API_VERSION);
    int mmap_size = ::ioctl(fd.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmap_size < static_cast<int>(sizeof(kvm_run))) return Error::from_errno("KVM_GET_VCPU_MMAP_SIZE");
    Kvm kvm(std::move(fd), api, mmap_size);
    for (long cap : {KVM_CAP_IRQCHIP, KVM_CAP_USER_MEMORY, KVM_CAP_IRQFD, KVM_CAP_IOEVENTFD, KVM_CAP_PIT2,
                     KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_EXT_CPUID, KVM_CAP_SET_TSS_ADDR}) {
        if (kvm.check_extension(cap) <= 0) return Error::msg("{}: KVM lacks required capability {}", path, cap);
    }
    return kvm;
}

int Kvm::check_extension(long cap) const { return ::ioctl(m_fd.get(), KVM_CHECK_EXTENSION, cap); }

Result<std::vector<kvm_cpuid_entry2>> Kvm::supported_cpuid() const {
    // KVM returns E2BIG until the buffer is big enough.
    for (uint32_t n = 64; n <= 4096; n *= 2) {
        size_t bytes = flex::kEntriesOffset + n * sizeof(kvm_cpuid_entry2);
        auto buf = std::make_unique<std::byte[]>(bytes);
        flex::Header header{n, 0};
        std::memcpy(buf.get(), &header, sizeof(header));
        if (::ioctl(m_fd.get(), flex::kGetSupportedCpuid, buf.get()) == 0) {
            std::memcpy(&header, buf.get(), sizeof(header));
            std::vector<kvm_cpuid_entry2> entries(std::min(header.count, n));
            std::memcpy(entries.data(), buf.get() + flex::kEntriesOffset, entries.size() * sizeof(kvm_cpuid_entry2));
            return entries;
        }
        if (errno != E2BIG) return Error::from_errno("KVM_GET_SUPPORTED_CPUID");
    }
    return Error::msg("KVM_GET_SUPPORTED_CPUID: too many entries");
}

Result<VmFd> Kvm::create_vm() const {
    int fd = ::ioctl(m_fd.get(), KVM_CREATE_VM, 0);
    if (fd < 0) return Error::from_errno("KVM_CREATE_VM");
    return VmFd(UniqueFd(fd), m_vcpu_mmap_size);
}

bool Kvm::host_is_pvm() {
    struct stat st {};
    return ::stat("/sys/module/kvm_pvm", &st) == 0;
}

IrqFd::~IrqFd() {
    if (m_vm < 0) return;
    kvm_irqfd req{};
    req.fd = static_cast<uint32_t>(m_fd);
    req.gsi = m_gsi;
    req.flags = KVM_IRQFD_FLAG_DEASSIGN;
    ::ioctl(m_vm, KVM_IRQFD, &req);
}

IoEventFd::~IoEventFd() {
    if (m_vm < 0) return;
    m_req.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    ::ioctl(m_vm, KVM_IOEVENTFD, &m_req);
}

Result<void> VmFd::set_tss_address(uint64_t addr) const {
    if (::ioctl(m_fd.get(), KVM_SET_TSS_ADDR, addr) < 0) return Error::from_errno("KVM_SET_TSS_ADDR");
    return ok();
}

Result<void> VmFd::set_identity_map_address(uint64_t addr) const {
    if (::ioctl(m_fd.get(), KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0) return Error::from_errno("KVM_SET_IDENTITY_MAP_ADDR");
    return ok();
}

Result<void> VmFd::create_irqchip() const {
    if (::ioctl(m_fd.get(), KVM_CREATE_IRQCHIP, 0) < 0) return Error::from_errno("KVM_CREATE_IRQCHIP");
    return ok();
}

Result<void> VmFd::create_pit2() const {
    kvm_pit_config config{};
    // The speaker port 0x61 is then handled in the kernel as a dummy.
    config.flags = KVM_PIT_SPEAKER_DUMMY;
    if (::ioctl(m_fd.get(), KVM_CREATE_PIT2, &config) < 0) return Error::from_errno("KVM_CREATE_PIT2");
    return ok();
}

Result<void> VmFd::set_user_memory_region(uint32_t slot, memory::GuestAddress guest_phys, uint64_t size,
                                          uint64_t host_addr) const {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.guest_phys_addr = guest_phys.raw;
    region.memory_size = size;
    region.userspace_addr = host_addr;
    if (::ioctl(m_fd.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
        return Error::from_errno(fmt::format("KVM_SET_USER_MEMORY_REGION slot {} at {:#x}", slot, guest_phys.raw));
    }
    return ok();
}

Result<VcpuFd> VmFd::create_vcpu(uint32_t id) const {
    UniqueFd fd(::ioctl(m_fd.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)));
    if (!fd) return Error::from_errno(fmt::format("KVM_CREATE_VCPU {}", id));
    size_t size = static_cast<size_t>(m_vcpu_mmap_size);
    // SAFETY: the kernel-provided kvm_run page(s) for this vCPU; unmapped by ~VcpuFd.
    void* run = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (run == MAP_FAILED) return Error::from_errno("mmap kvm_run");
    return VcpuFd(std::move(fd), id, static_cast<kvm_run*>(run), size);
}

Result<IrqFd> VmFd::register_irqfd(const EventFd& event, uint32_t gsi) const {
    kvm_irqfd req{};
    req.fd = static_cast<uint32_t>(event.fd());
    req.gsi = gsi;
    if (::ioctl(m_fd.get(), KVM_IRQFD, &req) < 0) return Error::from_errno(fmt::format("KVM_IRQFD gsi {}", gsi));
    return IrqFd(m_fd.get(), event.fd(), gsi);
}

Result<IrqFd> VmFd::register_resample_irqfd(const EventFd& trigger, const EventFd& resample, uint32_t gsi) const {
    kvm_irqfd req{};
    req.fd = static_cast<uint32_t>(trigger.fd());
    req.gsi = gsi;
    req.flags = KVM_IRQFD_FLAG_RESAMPLE;
    req.resamplefd = static_cast<uint32_t>(resample.fd());
    if (::ioctl(m_fd.get(), KVM_IRQFD, &req) < 0)
        return Error::from_errno(fmt::format("KVM_IRQFD (resample) gsi {}", gsi));
    return IrqFd(m_fd.get(), trigger.fd(), gsi);
}

Result<void> VmFd::set_gsi_routing(std::span<const kvm_irq_routing_entry> entries) const {
    // The kernel's C layout (flex_array_ioctls.h): an 8-byte header, then the entries.
    std::vector<std::byte> buf(flex::kEntriesOffset + entries.size_bytes());
    flex::Header header{static_cast<uint32_t>(entries.size()), 0};
    std::memcpy(buf.data(), &header, sizeof header);
    if (!entries.empty()) std::memcpy(buf.data() + flex::kEntriesOffset, entries.data(), entries.size_bytes());
    if (::ioctl(m_fd.get(), flex::kSetGsiRouting, buf.data()) < 0)
        return Error::from_errno(fmt::format("KVM_SET_GSI_ROUTING ({} routes)", entries.size()));
    return ok();
}

Result<void> VmFd::delete_memory_region(uint32_t slot) const {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    if (::ioctl(m_fd.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return Error::from_errno(fmt::format("KVM_SET_USER_MEMORY_REGION: deleting slot {}", slot));
    return ok();
}

Result<IoEventFd> VmFd::register_ioeventfd(const EventFd& event, uint64_t addr, uint32_t len,
                                           std::optional<uint64_t> datamatch, bool pio) const {
    kvm_ioeventfd req{};
    req.addr = addr;
    req.len = len;
    req.fd = event.fd();
    if (datamatch) {
        req.datamatch = *datamatch;
        req.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    }
    if (pio) req.flags |= KVM_IOEVENTFD_FLAG_PIO;
    if (::ioctl(m_fd.get(), KVM_IOEVENTFD, &req) < 0) {
        return Error::from_errno(fmt::format("KVM_IOEVENTFD at {:#x}", addr));
    }
    return IoEventFd(m_fd.get(), req);
}

Result<void> VmFd::set_irq_line(uint32_t irq, bool level) const {
    kvm_irq_level req{};
    req.irq = irq;
    req.level = level ? 1 : 0;
    if (::ioctl(m_fd.get(), KVM_IRQ_LINE, &req) < 0) return Error::from_errno("KVM_IRQ_LINE");
    return ok();
}

}  // namespace vmm::kvm
