// Work-arounds for KVM served by kvm_pvm (a paravirtual nested hypervisor without
// VMX/SVM, as on our development and CI hosts; see docs/dev-hosts.md). They are
// applied only when Kvm::host_is_pvm(): nothing changes on hosts with VMX/SVM.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/result.h"
#include "vmm/kvm/vcpu_fd.h"

namespace vmm::pvm {

// Appended to the kernel command line: CPU features whose instructions the host's
// emulator rejects, and nopv (the guest's KVM PV features hang SMP bring-up there).
std::string cmdline_additions();

// What to do about a KVM emulation failure on this host.
enum class EmulationFix {
    none,               // a real failure: report it
    skip_instruction,   // fwait (0x9b): nothing to wait for, step over it
    inject_breakpoint,  // int3 (0xcc): step over it and deliver #BP as the CPU would
};

EmulationFix classify_emulation_failure(std::span<const uint8_t> insn_bytes);

// Applies `fix` to a vCPU stopped on the failing instruction.
[[nodiscard]] Result<void> apply(kvm::VcpuFd& vcpu, EmulationFix fix);

}  // namespace vmm::pvm
