#include "unix_socket.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace vmm::api::detail {

Result<sockaddr_un> unix_address(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty()) return Error::msg("empty API socket path");
    if (path.size() >= sizeof(addr.sun_path)) {
        return Error::msg("API socket path {} is too long ({} bytes; at most {})", path, path.size(),
                          sizeof(addr.sun_path) - 1);
    }
    if (path.find('\0') != std::string::npos) return Error::msg("API socket path contains a NUL byte");
    std::memcpy(addr.sun_path, path.data(), path.size());
    return addr;
}

WaitResult wait_fd(int fd, short events, int stop_fd, std::chrono::milliseconds timeout) {
    pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    nfds_t count = stop_fd >= 0 ? 2 : 1;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() < 0) left = std::chrono::milliseconds(0);
        int n = ::poll(fds, count, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return WaitResult::failed;
        if (n == 0) return WaitResult::timed_out;
        if (count == 2 && fds[1].revents) return WaitResult::stopped;
        // POLLHUP/POLLERR also count as ready: the read or write then reports it.
        return WaitResult::ready;
    }
}

Result<void> send_all(int fd, std::string_view data, int stop_fd, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            data.remove_prefix(static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return Error::from_errno("send");
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return Error::msg("send: timed out");
        switch (wait_fd(fd, POLLOUT, stop_fd, left)) {
            case WaitResult::ready: break;
            case WaitResult::stopped: return Error::msg("send: server stopping");
            case WaitResult::timed_out: return Error::msg("send: timed out");
            case WaitResult::failed: return Error::from_errno("poll");
        }
    }
    return ok();
}

}  // namespace vmm::api::detail
