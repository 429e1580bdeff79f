// Per-vCPU CPUID normalisation, applied to the list from KVM_GET_SUPPORTED_CPUID
// before KVM_SET_CPUID2 (Firecracker docs/cpu_templates/cpuid-normalization.md).
// The guest sees a single package with vcpu_count cores of one thread each.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace vmm::boot {

struct CpuidParams {
    uint32_t apic_id;     // this vCPU's (x2)APIC id; the vCPU index
    uint32_t vcpu_count;  // vCPUs in the VM, >= 1
};

// Bit positions the normalisation touches (exposed for tests and the KVM layer).
inline constexpr uint32_t kCpuid1EcxPdcm = 1u << 15;
inline constexpr uint32_t kCpuid1EcxTscDeadline = 1u << 24;
inline constexpr uint32_t kCpuid1EcxHypervisor = 1u << 31;
inline constexpr uint32_t kCpuid1EdxHtt = 1u << 28;
inline constexpr uint32_t kCpuid6EaxTurbo = 1u << 1;
inline constexpr uint32_t kTopologyLevelInvalid = 0;
inline constexpr uint32_t kTopologyLevelSmt = 1;
inline constexpr uint32_t kTopologyLevelCore = 2;

// True when leaf 0 carries "AuthenticAMD".
bool cpuid_is_amd(const std::vector<kvm_cpuid_entry2>& entries);
// Smallest s with (1 << s) >= n (0 for n <= 1): APIC-id bits for n cores.
uint32_t ceil_log2(uint32_t n);

// Rewrites `entries` in place for one vCPU; a vcpu_count of 0 is treated as 1.
void normalize_cpuid(std::vector<kvm_cpuid_entry2>& entries, const CpuidParams& params);

}  // namespace vmm::boot
