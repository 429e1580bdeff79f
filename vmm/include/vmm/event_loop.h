// The VMM thread's epoll loop. Handlers run on the loop's thread only; fds are
// registered with a callback that receives the epoll event mask.
#pragma once

#include <functional>
#include <map>
#include <memory>

#include "common/result.h"
#include "common/unique_fd.h"

namespace vmm {

class EventLoop {
public:
    using Handler = std::function<void(uint32_t events)>;

    [[nodiscard]] static Result<EventLoop> create();

    [[nodiscard]] Result<void> add(int fd, uint32_t events, Handler handler);
    [[nodiscard]] Result<void> modify(int fd, uint32_t events);
    // Safe to call from inside a handler, including the fd's own.
    [[nodiscard]] Result<void> remove(int fd);
    // Waits up to timeout_ms (-1: forever) and dispatches what is ready.
    [[nodiscard]] Result<void> run_once(int timeout_ms);

private:
    explicit EventLoop(UniqueFd epoll) : m_epoll(std::move(epoll)) {}
    UniqueFd m_epoll;
    std::map<int, std::shared_ptr<Handler>> m_handlers;
};

}  // namespace vmm
