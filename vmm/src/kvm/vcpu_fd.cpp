#include "vmm/kvm/vcpu_fd.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cstring>
#include <memory>

#include "flex_array_ioctls.h"

namespace vmm::kvm {
namespace {

template <typename T>
Result<T> get(int fd, unsigned long request, const char* name) {
    T value{};
    if (::ioctl(fd, request, &value) < 0) return Error::from_errno(name);
    return value;
}

template <typename T>
Result<void> set(int fd, unsigned long request, const T& value, const char* name) {
    if (::ioctl(fd, request, &value) < 0) return Error::from_errno(name);
    return ok();
}

// Header + entries with the kernel's C layout (see flex_array_ioctls.h).
template <typename Entry>
std::vector<std::byte> flex_buffer(const std::vector<Entry>& entries) {
    std::vector<std::byte> buf(flex::kEntriesOffset + entries.size() * sizeof(Entry));
    flex::Header header{static_cast<uint32_t>(entries.size()), 0};
    std::memcpy(buf.data(), &header, sizeof(header));
    if (!entries.empty()) std::memcpy(buf.data() + flex::kEntriesOffset, entries.data(), entries.size() * sizeof(Entry));
    return buf;
}

}  // namespace

VcpuFd::VcpuFd(VcpuFd&& other) noexcept
    : m_fd(std::move(other.m_fd)),
      m_id(other.m_id),
      m_run(std::exchange(other.m_run, nullptr)),
      m_mmap_size(other.m_mmap_size) {}

VcpuFd::~VcpuFd() {
    if (m_run != nullptr) ::munmap(m_run, m_mmap_size);
}

Result<kvm_regs> VcpuFd::get_regs() const { return get<kvm_regs>(m_fd.get(), KVM_GET_REGS, "KVM_GET_REGS"); }
Result<void> VcpuFd::set_regs(const kvm_regs& regs) const { return set(m_fd.get(), KVM_SET_REGS, regs, "KVM_SET_REGS"); }
Result<kvm_sregs> VcpuFd::get_sregs() const { return get<kvm_sregs>(m_fd.get(), KVM_GET_SREGS, "KVM_GET_SREGS"); }
Result<void> VcpuFd::set_sregs(const kvm_sregs& sregs) const {
    return set(m_fd.get(), KVM_SET_SREGS, sregs, "KVM_SET_SREGS");
}
Result<void> VcpuFd::set_fpu(const kvm_fpu& fpu) const { return set(m_fd.get(), KVM_SET_FPU, fpu, "KVM_SET_FPU"); }
Result<kvm_lapic_state> VcpuFd::get_lapic() const {
    return get<kvm_lapic_state>(m_fd.get(), KVM_GET_LAPIC, "KVM_GET_LAPIC");
}
Result<void> VcpuFd::set_lapic(const kvm_lapic_state& lapic) const {
    return set(m_fd.get(), KVM_SET_LAPIC, lapic, "KVM_SET_LAPIC");
}
Result<kvm_mp_state> VcpuFd::get_mp_state() const {
    return get<kvm_mp_state>(m_fd.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE");
}
Result<kvm_vcpu_events> VcpuFd::get_vcpu_events() const {
    return get<kvm_vcpu_events>(m_fd.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
Result<void> VcpuFd::set_vcpu_events(const kvm_vcpu_events& events) const {
    return set(m_fd.get(), KVM_SET_VCPU_EVENTS, events, "KVM_SET_VCPU_EVENTS");
}

Result<void> VcpuFd::set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) const {
    auto buf = flex_buffer(entries);
    if (::ioctl(m_fd.get(), flex::kSetCpuid2, buf.data()) < 0) return Error::from_errno("KVM_SET_CPUID2");
    return ok();
}

Result<void> VcpuFd::set_msrs(const std::vector<kvm_msr_entry>& msrs) const {
    auto buf = flex_buffer(msrs);
    // KVM_SET_MSRS returns how many entries it set; fewer means one was refused.
    int set_count = ::ioctl(m_fd.get(), flex::kSetMsrs, buf.data());
    if (set_count < 0) return Error::from_errno("KVM_SET_MSRS");
    if (static_cast<size_t>(set_count) != msrs.size()) {
        return Error::msg("KVM_SET_MSRS: KVM refused MSR {:#x}", msrs[static_cast<size_t>(set_count)].index);
    }
    return ok();
}

Result<uint64_t> VcpuFd::translate(uint64_t gva) const {
    kvm_translation tr{};
    tr.linear_address = gva;
    if (::ioctl(m_fd.get(), KVM_TRANSLATE, &tr) < 0) return Error::from_errno("KVM_TRANSLATE");
    if (!tr.valid) return Error::msg("guest virtual address {:#x} is not mapped", gva);
    return static_cast<uint64_t>(tr.physical_address);
}

void VcpuFd::set_immediate_exit(bool value) {
    std::atomic_ref<uint8_t>(m_run->immediate_exit).store(value ? 1 : 0, std::memory_order_release);
}

Result<VcpuExit> VcpuFd::run() {
    if (::ioctl(m_fd.get(), KVM_RUN, 0) < 0) {
        if (errno == EINTR) return VcpuExit{exit::Interrupted{}};
        if (errno == EAGAIN) return VcpuExit{exit::Again{}};
        return Error::from_errno(fmt::format("vCPU {}: KVM_RUN", m_id));
    }
    return decode_exit();
}

VcpuExit VcpuFd::decode_exit() {
    auto* base = reinterpret_cast<std::byte*>(m_run);
    switch (m_run->exit_reason) {
        case KVM_EXIT_IO: {
            size_t len = static_cast<size_t>(m_run->io.size) * m_run->io.count;
            std::span<std::byte> data(base + m_run->io.data_offset, len);
            if (m_run->io.direction == KVM_EXIT_IO_IN) return exit::IoIn{m_run->io.port, m_run->io.size, data};
            return exit::IoOut{m_run->io.port, m_run->io.size, data};
        }
        case KVM_EXIT_MMIO: {
            std::span<std::byte> data(reinterpret_cast<std::byte*>(m_run->mmio.data),
                                      std::min<size_t>(m_run->mmio.len, sizeof(m_run->mmio.data)));
            if (m_run->mmio.is_write) return exit::MmioWrite{m_run->mmio.phys_addr, data};
            return exit::MmioRead{m_run->mmio.phys_addr, data};
        }
        case KVM_EXIT_HLT: return exit::Hlt{};
        case KVM_EXIT_SHUTDOWN: return exit::Shutdown{};
        case KVM_EXIT_INTR: return exit::Interrupted{};
        case KVM_EXIT_SYSTEM_EVENT: return exit::SystemEvent{m_run->system_event.type};
        case KVM_EXIT_FAIL_ENTRY:
            return exit::FailEntry{m_run->fail_entry.hardware_entry_failure_reason, m_run->fail_entry.cpu};
        case KVM_EXIT_INTERNAL_ERROR: {
            exit::InternalError err{m_run->internal.suberror, {}};
            if (err.suberror == KVM_INTERNAL_ERROR_EMULATION &&
                (m_run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
                size_t n = std::min<size_t>(m_run->emulation_failure.insn_size,
                                            sizeof(m_run->emulation_failure.insn_bytes));
                err.insn_bytes.assign(m_run->emulation_failure.insn_bytes,
                                      m_run->emulation_failure.insn_bytes + n);
            }
            return err;
        }
        default: return exit::Unknown{m_run->exit_reason};
    }
}

}  // namespace vmm::kvm
