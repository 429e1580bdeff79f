#include "vmm/event_loop.h"

#include <sys/epoll.h>

#include <array>

namespace vmm {

Result<EventLoop> EventLoop::create() {
    UniqueFd fd(::epoll_create1(EPOLL_CLOEXEC));
    if (!fd) return Error::from_errno("epoll_create1");
    return EventLoop(std::move(fd));
}

Result<void> EventLoop::add(int fd, uint32_t events, Handler handler) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, fd, &ev) < 0) return Error::from_errno("epoll_ctl add");
    m_handlers[fd] = std::make_shared<Handler>(std::move(handler));
    return ok();
}

Result<void> EventLoop::modify(int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_MOD, fd, &ev) < 0) return Error::from_errno("epoll_ctl mod");
    return ok();
}

Result<void> EventLoop::remove(int fd) {
    m_handlers.erase(fd);
    if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, fd, nullptr) < 0) return Error::from_errno("epoll_ctl del");
    return ok();
}

Result<void> EventLoop::run_once(int timeout_ms) {
    std::array<epoll_event, 32> events{};
    int n = ::epoll_wait(m_epoll.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return ok();
        return Error::from_errno("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
        auto it = m_handlers.find(events[static_cast<size_t>(i)].data.fd);
        if (it == m_handlers.end()) continue;  // removed by an earlier handler
        auto handler = it->second;             // keeps it alive if it removes itself
        (*handler)(events[static_cast<size_t>(i)].events);
    }
    return ok();
}

}  // namespace vmm
