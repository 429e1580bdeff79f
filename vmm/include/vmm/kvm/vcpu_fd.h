// RAII owner of a vCPU fd and its kvm_run mapping.
#pragma once

#include <linux/kvm.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "vmm/kvm/vcpu_exit.h"

namespace vmm::kvm {

class VcpuFd {
public:
    VcpuFd(VcpuFd&& other) noexcept;
    VcpuFd& operator=(VcpuFd&&) = delete;
    VcpuFd(const VcpuFd&) = delete;
    ~VcpuFd();

    uint32_t id() const { return m_id; }

    [[nodiscard]] Result<kvm_regs> get_regs() const;
    [[nodiscard]] Result<void> set_regs(const kvm_regs& regs) const;
    [[nodiscard]] Result<kvm_sregs> get_sregs() const;
    [[nodiscard]] Result<void> set_sregs(const kvm_sregs& sregs) const;
    [[nodiscard]] Result<void> set_fpu(const kvm_fpu& fpu) const;
    [[nodiscard]] Result<void> set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) const;
    [[nodiscard]] Result<void> set_msrs(const std::vector<kvm_msr_entry>& msrs) const;
    [[nodiscard]] Result<kvm_lapic_state> get_lapic() const;
    [[nodiscard]] Result<void> set_lapic(const kvm_lapic_state& lapic) const;
    [[nodiscard]] Result<kvm_mp_state> get_mp_state() const;
    [[nodiscard]] Result<kvm_vcpu_events> get_vcpu_events() const;
    [[nodiscard]] Result<void> set_vcpu_events(const kvm_vcpu_events& events) const;
    // Guest-virtual to guest-physical through the vCPU's current page tables.
    [[nodiscard]] Result<uint64_t> translate(uint64_t gva) const;

    // Enters the guest; a kick (signal while immediate_exit is set) returns Interrupted.
    [[nodiscard]] Result<VcpuExit> run();
    // Written by other threads before they signal this vCPU's thread.
    void set_immediate_exit(bool value);

private:
    friend class VmFd;
    VcpuFd(UniqueFd fd, uint32_t id, kvm_run* run, size_t mmap_size)
        : m_fd(std::move(fd)), m_id(id), m_run(run), m_mmap_size(mmap_size) {}
    VcpuExit decode_exit();

    UniqueFd m_fd;
    uint32_t m_id;
    kvm_run* m_run;
    size_t m_mmap_size;
};

}  // namespace vmm::kvm
