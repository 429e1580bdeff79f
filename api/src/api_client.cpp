#include "api/api_client.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "api/http.h"
#include "api/routes.h"
#include "common/unique_fd.h"
#include "unix_socket.h"

namespace vmm::api {
namespace {

constexpr size_t kMaxResponseBytes = 16 * 1024 * 1024;

Result<UniqueFd> connect_to(const std::string& path, std::chrono::milliseconds timeout) {
    sockaddr_un addr = VMM_TRY(detail::unix_address(path));
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Error::from_errno("socket");
    // A connect to a Unix socket whose backlog is full blocks; SO_SNDTIMEO bounds it.
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        if (errno == EINTR) continue;
        return Error::from_errno(fmt::format("cannot connect to {}", path));
    }
    return fd;
}

Result<HttpResponse> read_response(int fd, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string data;
    bool eof = false;
    for (;;) {
        auto parsed = VMM_TRY(parse_response(data, eof, kMaxResponseBytes));
        if (parsed) {
            // Skip an interim "100 Continue" and read the final response.
            if (parsed->status >= 100 && parsed->status < 200) {
                data.erase(0, data.find("\r\n\r\n") + 4);
                continue;
            }
            return std::move(*parsed);
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return Error::msg("no response within {} ms", timeout.count());
        switch (detail::wait_fd(fd, POLLIN, -1, left)) {
            case detail::WaitResult::ready: break;
            case detail::WaitResult::timed_out: return Error::msg("no response within {} ms", timeout.count());
            case detail::WaitResult::stopped:
            case detail::WaitResult::failed: return Error::from_errno("poll");
        }
        char chunk[16 * 1024];
        ssize_t n = ::recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) return Error::from_errno("reading the response");
        if (n == 0) eof = true;
        data.append(chunk, static_cast<size_t>(n));
    }
}

}  // namespace

Result<HttpResponse> ApiClient::request(const std::string& method, const std::string& path,
                                        const std::string& json_body) const {
    UniqueFd fd = VMM_TRY(connect_to(m_socket_path, m_timeout));
    std::string target = std::string(kApiPrefix) + path;
    auto sent = detail::send_all(fd.get(), serialize_request(method, target, json_body), -1, m_timeout);
    // The server may answer (413, 400) and close before reading all we send:
    // its reply is still worth reading.
    auto response = read_response(fd.get(), m_timeout);
    if (!response && !sent) return sent.error().context(fmt::format("{} {}", method, target));
    if (!response) return response.error().context(fmt::format("{} {}", method, target));
    return response;
}

Result<HttpResponse> ApiClient::get(const std::string& path) const { return request("GET", path, ""); }

Result<HttpResponse> ApiClient::put(const std::string& path, const std::string& json_body) const {
    return request("PUT", path, json_body);
}

}  // namespace vmm::api
