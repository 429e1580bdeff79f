// Boot MSRs: Firecracker's list (docs/cpu_templates/boot-protocol.md) plus
// cloud-hypervisor's MTRRdefType. KVM_SET_MSRS must come after KVM_SET_CPUID2,
// since KVM drops MSRs the guest CPUID does not expose.
#include "vmm/boot/cpu_setup.h"

namespace vmm::boot {

std::vector<kvm_msr_entry> boot_msrs() {
    auto msr = [](uint32_t index, uint64_t data) {
        kvm_msr_entry e{};
        e.index = index;
        e.data = data;
        return e;
    };
    return {
        // SYSENTER/SYSCALL entry points cleared: nothing may enter the kernel
        // through a stale host-provided or reset value before Linux programs them.
        msr(kMsrIa32SysenterCs, 0),
        msr(kMsrIa32SysenterEsp, 0),
        msr(kMsrIa32SysenterEip, 0),
        msr(kMsrStar, 0),
        msr(kMsrCstar, 0),
        msr(kMsrKernelGsBase, 0),
        msr(kMsrSyscallMask, 0),
        msr(kMsrLstar, 0),
        // TSC starts at 0 on every vCPU so they begin synchronised.
        msr(kMsrIa32Tsc, 0),
        // Fast-string REP MOVS/STOS, as a BIOS would enable.
        msr(kMsrIa32MiscEnable, kMiscEnableFastString),
        // MTRRs enabled with write-back default: with no firmware to program them,
        // the reset value (MTRRs off = all memory uncached) makes the guest very slow.
        msr(kMsrMtrrDefType, kMtrrEnable | kMtrrTypeWriteBack),
    };
}

}  // namespace vmm::boot
