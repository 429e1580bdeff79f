// One VMM process's life: boot the VM, run it, and act on how it ended. The guest
// rebooting or powering off ends the process (status 0, as Firecracker does);
// vm.reboot boots it again from its (possibly API-updated) config; vm.shutdown
// leaves the VMM serving the API without a VM until vmm.shutdown.
#pragma once

#include <memory>

#include "common/result.h"
#include "vmm/request_channel.h"
#include "vmm/vm_config.h"

namespace vmm {

// Returns the exit status for the process; an Error for a failed VM (triple
// fault, KVM error, set-up failure), whose message is the one-line reason.
// First installs the VMM thread's seccomp filter (config.seccomp) on the calling
// thread, for the rest of its life (docs/seccomp.md).
[[nodiscard]] Result<int> run_vmm(VmConfig config, std::shared_ptr<RequestChannel> requests);

}  // namespace vmm
