#include "vmm/request_channel.h"

namespace vmm {

const char* to_string(VmState state) {
    switch (state) {
        case VmState::created: return "Created";
        case VmState::running: return "Running";
        case VmState::paused: return "Paused";
        case VmState::shutdown: return "Shutdown";
    }
    return "Unknown";
}

Result<std::shared_ptr<RequestChannel>> RequestChannel::create() {
    EventFd event = VMM_TRY(EventFd::create());
    return std::shared_ptr<RequestChannel>(new RequestChannel(std::move(event)));
}

Result<VmReply> RequestChannel::call(VmRequest request, std::chrono::milliseconds timeout) {
    auto pending = std::make_shared<Pending>(Pending{std::move(request), std::nullopt, false});
    std::unique_lock lock(m_mutex);
    if (m_closed) return Error::msg("the VMM is shutting down");
    m_queue.push_back(pending);
    VMM_TRY(m_event.signal());
    bool answered = m_cv.wait_for(lock, timeout, [&] { return pending->reply.has_value() || m_closed; });
    if (!answered) {
        pending->abandoned = true;
        return Error::msg("the VMM did not answer within {} ms", timeout.count());
    }
    if (!pending->reply) return Error::msg("the VMM is shutting down");
    return std::move(*pending->reply);
}

void RequestChannel::drain(const std::function<VmReply(const VmRequest&)>& handler) {
    (void)m_event.consume();
    for (;;) {
        std::shared_ptr<Pending> next;
        {
            std::lock_guard lock(m_mutex);
            if (m_queue.empty()) return;
            next = m_queue.front();
            m_queue.pop_front();
            // A caller that gave up does not get its request executed late.
            if (next->abandoned) continue;
        }
        VmReply reply = handler(next->request);
        {
            std::lock_guard lock(m_mutex);
            next->reply = std::move(reply);
        }
        m_cv.notify_all();
    }
}

void RequestChannel::close() {
    {
        std::lock_guard lock(m_mutex);
        m_closed = true;
        m_queue.clear();
    }
    m_cv.notify_all();
}

}  // namespace vmm
