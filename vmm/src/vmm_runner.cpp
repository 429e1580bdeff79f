#include "vmm/vmm_runner.h"

#include <poll.h>

#include "common/log.h"
#include "vmm/seccomp.h"
#include "vmm/vm.h"

namespace vmm {
namespace {

// After vm.shutdown: answer the API without a VM until vmm.shutdown.
Result<int> serve_without_vm(const VmConfig& config, RequestChannel& requests) {
    bool done = false;
    auto handler = [&](const VmRequest& request) -> VmReply {
        if (std::holds_alternative<request::Ping>(request)) return ping_info();
        if (std::holds_alternative<request::ShutdownVmm>(request)) {
            done = true;
            return Empty{};
        }
        if (std::holds_alternative<request::GetInfo>(request)) {
            VmInfo info;
            info.config = config;
            info.state = VmState::shutdown;
            return info;
        }
        return RequestError{RequestError::Kind::not_found, "the VM has been shut down"};
    };
    while (!done) {
        pollfd pfd{requests.fd(), POLLIN, 0};
        if (::poll(&pfd, 1, -1) < 0 && errno != EINTR) return Error::from_errno("poll");
        requests.drain(handler);
    }
    return 0;
}

}  // namespace

Result<int> run_vmm(VmConfig config, std::shared_ptr<RequestChannel> requests) {
    // The calling thread becomes the VMM thread. Its filter goes on before the first
    // Vm::create: vm.reboot runs Vm::create again under it anyway, and the vCPU and
    // device worker threads it starts inherit it under their own (a superset of
    // theirs, so each ends with exactly its own set). The mode never changes on
    // reboot: a filter cannot be removed.
    VMM_TRY(apply_seccomp(ThreadKind::vmm, config.seccomp));
    if (config.seccomp != SeccompMode::off) {
        log::info("seccomp: every VMM thread filters its syscalls ({})",
                  config.seccomp == SeccompMode::on ? "a forbidden one kills the VMM" : "log: forbidden ones are logged");
    }
    for (;;) {
        auto vm = VMM_TRY(Vm::create(config));
        if (requests) vm->attach_requests(requests);
        VmExitRequest end = VMM_TRY(vm->run());
        config = vm->config();  // keeps what the API changed (the balloon size)
        vm.reset();
        switch (end.kind) {
            case VmExitKind::reset:
            case VmExitKind::poweroff:
            case VmExitKind::api_shutdown_vmm:
                log::info("guest ended: {}", end.reason);
                return 0;
            case VmExitKind::error: return Error(end.reason);
            case VmExitKind::api_reboot:
                log::info("{}: booting the VM again", end.reason);
                continue;
            case VmExitKind::api_shutdown_vm:
                log::info("{}; the API stays up until vmm.shutdown", end.reason);
                if (!requests) return 0;
                return serve_without_vm(config, *requests);
        }
    }
}

}  // namespace vmm
