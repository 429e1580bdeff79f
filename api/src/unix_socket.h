// Unix-socket helpers shared by the API server and client (private to api/).
#pragma once

#include <sys/un.h>

#include <chrono>
#include <string>
#include <string_view>

#include "common/result.h"

namespace vmm::api::detail {

// The address for `path`; an error when it does not fit sun_path (107 bytes).
[[nodiscard]] Result<sockaddr_un> unix_address(const std::string& path);

// Waits until `fd` is readable (POLLIN) or writable (POLLOUT), the stop fd (if
// >= 0) fires, or the timeout passes.
enum class WaitResult { ready, stopped, timed_out, failed };
WaitResult wait_fd(int fd, short events, int stop_fd, std::chrono::milliseconds timeout);

// Writes all of `data` to a non-blocking socket, never raising SIGPIPE; gives up
// when the peer is gone, the stop fd fires or `timeout` passes in total.
[[nodiscard]] Result<void> send_all(int fd, std::string_view data, int stop_fd, std::chrono::milliseconds timeout);

}  // namespace vmm::api::detail
