// How the VM ends. Any thread (a vCPU, a device, the API) may request the end;
// the first request wins and wakes the VMM thread through an eventfd.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/event_fd.h"
#include "common/result.h"

namespace vmm {

enum class VmExitKind {
    reset,     // the guest rebooted (i8042 reset, KVM reset event): a clean end
    poweroff,  // the guest powered off, or the user asked the VMM to stop
    error,     // triple fault, KVM error, VMM error: the VMM exits non-zero
    api_shutdown_vm,   // vm.shutdown: the VM ends, the VMM keeps serving the API
    api_shutdown_vmm,  // vmm.shutdown: the VMM exits 0
    api_reboot,        // vm.reboot: the VM is created and booted again
};

struct VmExitRequest {
    VmExitKind kind;
    std::string reason;  // one line, shown to the user
};

class ExitNotifier {
public:
    [[nodiscard]] static Result<std::unique_ptr<ExitNotifier>> create();
    ExitNotifier(const ExitNotifier&) = delete;
    ExitNotifier& operator=(const ExitNotifier&) = delete;

    void request(VmExitKind kind, std::string reason);
    std::optional<VmExitRequest> requested() const;
    const EventFd& event() const { return m_event; }

private:
    explicit ExitNotifier(EventFd event) : m_event(std::move(event)) {}
    EventFd m_event;
    mutable std::mutex m_mutex;
    std::optional<VmExitRequest> m_request;
};

}  // namespace vmm
