#include "vmm/pvm_workarounds.h"

namespace vmm::pvm {

std::string cmdline_additions() {
    // The list measured on kvm_pvm hosts (docs/dev-hosts.md): masking the bits in
    // KVM_SET_CPUID2 alone was not enough, the kernel must be told. cx16: SLUB's
    // cmpxchg_double (lock cmpxchg16b) is not emulated either. RCU stall warnings
    // only measure the emulation's slowness here, and printing their stack dumps
    // over the emulated UART costs minutes.
    return "clearcpuid=smap,smep,xsave,pku,umip,popcnt,rdrand,rdseed,movbe,avx,avx2,fsgsbase,erms,"
           "fsrm,bmi1,bmi2,adx,sha_ni,aes,pclmulqdq,cx16 nopv rcupdate.rcu_cpu_stall_suppress=1";
}

EmulationFix classify_emulation_failure(std::span<const uint8_t> insn_bytes) {
    if (insn_bytes.empty()) return EmulationFix::none;
    switch (insn_bytes[0]) {
        case 0xcc: return EmulationFix::inject_breakpoint;
        case 0x9b: return EmulationFix::skip_instruction;
        default: return EmulationFix::none;
    }
}

Result<void> apply(kvm::VcpuFd& vcpu, EmulationFix fix) {
    if (fix == EmulationFix::none) return Error::msg("no work-around applies");
    kvm_regs regs = VMM_TRY(vcpu.get_regs());
    regs.rip += 1;  // both instructions are one byte long
    VMM_TRY(vcpu.set_regs(regs));
    if (fix == EmulationFix::inject_breakpoint) {
        // #BP is a trap: the handler sees RIP after the int3, as on hardware.
        kvm_vcpu_events events = VMM_TRY(vcpu.get_vcpu_events());
        events.exception.injected = 1;
        events.exception.nr = 3;
        events.exception.has_error_code = 0;
        events.exception.error_code = 0;
        events.flags = 0;
        VMM_TRY(vcpu.set_vcpu_events(events));
    }
    return ok();
}

}  // namespace vmm::pvm
