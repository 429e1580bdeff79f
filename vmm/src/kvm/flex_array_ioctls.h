// linux-libc-dev 6.1 declares the variable-length KVM structs (kvm_cpuid2,
// kvm_msrs, kvm_irq_routing) with __DECLARE_FLEX_ARRAY, which in C++ adds a
// 1-byte empty struct before the array: sizeof becomes 12 instead of 8, the
// entries move to offset 12, and the ioctl numbers (which encode sizeof) no
// longer match the kernel's (it answers EINVAL). We lay these structs out
// ourselves with the kernel's C layout and derive the ioctl numbers from it.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>

namespace vmm::kvm::flex {

// The fixed part of kvm_cpuid2 / kvm_msrs / kvm_irq_routing as C lays it out.
struct Header {
    uint32_t count;    // nent / nmsrs / nr
    uint32_t padding;  // must be zero
};
static_assert(sizeof(Header) == 8);
static_assert(sizeof(kvm_cpuid_entry2) == 40 && sizeof(kvm_msr_entry) == 16);

inline constexpr size_t kEntriesOffset = sizeof(Header);

inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, Header);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, Header);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, Header);
inline constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, Header);
inline constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, Header);

}  // namespace vmm::kvm::flex
