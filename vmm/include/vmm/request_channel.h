// A channel from the API thread to the VMM thread: call() queues a request,
// wakes the VMM thread through an eventfd and waits (bounded) for the reply; the
// VMM thread's event loop drains the queue and answers each request. A VMM that
// does not answer in time yields an error, never a blocked API thread forever.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "common/event_fd.h"
#include "common/result.h"
#include "vmm/vm_requests.h"

namespace vmm {

class RequestChannel {
public:
    [[nodiscard]] static Result<std::shared_ptr<RequestChannel>> create();

    // API thread. Errors only when the VMM thread did not answer within `timeout`
    // or the channel was closed (the VMM is going away).
    [[nodiscard]] Result<VmReply> call(VmRequest request,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

    // VMM thread: the fd to watch, and the handler for every queued request.
    int fd() const { return m_event.fd(); }
    void drain(const std::function<VmReply(const VmRequest&)>& handler);
    // Fails every pending and future call (the VMM is exiting).
    void close();

private:
    struct Pending {
        VmRequest request;
        std::optional<VmReply> reply;
        bool abandoned = false;  // the caller timed out
    };
    explicit RequestChannel(EventFd event) : m_event(std::move(event)) {}

    EventFd m_event;
    std::mutex m_mutex;
    std::condition_variable m_cv;
    std::deque<std::shared_ptr<Pending>> m_queue;
    bool m_closed = false;
};

}  // namespace vmm
