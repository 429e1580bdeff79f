#include "vmm/exit_notifier.h"

#include "common/log.h"

namespace vmm {

Result<std::unique_ptr<ExitNotifier>> ExitNotifier::create() {
    EventFd event = VMM_TRY(EventFd::create());
    return std::unique_ptr<ExitNotifier>(new ExitNotifier(std::move(event)));
}

void ExitNotifier::request(VmExitKind kind, std::string reason) {
    {
        std::lock_guard lock(m_mutex);
        if (m_request) {
            log::debug("exit already requested; ignoring: {}", reason);
            return;
        }
        log::info("VM exit requested: {}", reason);
        m_request = VmExitRequest{kind, std::move(reason)};
    }
    if (auto r = m_event.signal(); !r) log::error("waking the VMM thread: {}", r.error().message());
}

std::optional<VmExitRequest> ExitNotifier::requested() const {
    std::lock_guard lock(m_mutex);
    return m_request;
}

}  // namespace vmm
