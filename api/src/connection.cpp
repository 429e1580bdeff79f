#include "connection.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "api/routes.h"
#include "common/log.h"
#include "unix_socket.h"

namespace vmm::api::detail {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 16 * 1024;

bool write_reply(const ConnectionContext& ctx, int fd, const HttpReply& reply) {
    auto sent = send_all(fd, serialize(reply), ctx.stop_fd, ctx.options.write_timeout);
    if (!sent) log::debug("API: dropping a connection: {}", sent.error().message());
    return sent.has_value();
}

std::chrono::milliseconds until(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return left.count() > 0 ? left : std::chrono::milliseconds(0);
}

}  // namespace

HttpReply answer(const ConnectionContext& ctx, const HttpRequest& request) {
    RouteResult routed = route_request(request);
    if (auto* immediate = std::get_if<HttpReply>(&routed)) return std::move(*immediate);
    auto reply = ctx.requests.call(std::get<VmRequest>(std::move(routed)), ctx.options.vmm_timeout);
    if (!reply) return error_reply(503, reply.error().message());
    return render_reply(*reply);
}

void serve_connection(const ConnectionContext& ctx, UniqueFd fd) {
    std::string buffer;
    bool sent_continue = false;
    Clock::time_point idle_deadline = Clock::now() + ctx.options.idle_timeout;
    Clock::time_point request_deadline = idle_deadline;
    for (;;) {
        // Parse first: a pipelined request may already be buffered.
        if (!buffer.empty()) {
            ParseOutcome outcome = parse_request(buffer, ctx.limits);
            if (outcome.kind == ParseOutcome::Kind::error) {
                HttpReply reply = error_reply(outcome.status, outcome.message);
                reply.close = true;
                (void)write_reply(ctx, fd.get(), reply);
                return;  // the rest of the stream cannot be trusted: close
            }
            if (outcome.kind == ParseOutcome::Kind::complete) {
                buffer.erase(0, outcome.consumed);
                HttpReply reply = answer(ctx, outcome.request);
                reply.close = reply.close || !outcome.request.keep_alive;
                if (!write_reply(ctx, fd.get(), reply) || reply.close) return;
                sent_continue = false;
                idle_deadline = Clock::now() + ctx.options.idle_timeout;
                request_deadline = Clock::now() + ctx.options.request_timeout;
                continue;
            }
            if (outcome.expects_continue && !sent_continue) {
                if (!send_all(fd.get(), "HTTP/1.1 100 Continue\r\n\r\n", ctx.stop_fd, ctx.options.write_timeout)) return;
                sent_continue = true;
            }
        }
        auto deadline = buffer.empty() ? idle_deadline : request_deadline;
        switch (wait_fd(fd.get(), POLLIN, ctx.stop_fd, until(deadline))) {
            case WaitResult::ready: break;
            case WaitResult::stopped: return;
            case WaitResult::failed: return;
            case WaitResult::timed_out:
                // Half a request: tell the client why; an idle keep-alive: just close.
                if (!buffer.empty()) {
                    HttpReply reply = error_reply(408, "request not completed in time");
                    reply.close = true;
                    (void)write_reply(ctx, fd.get(), reply);
                }
                return;
        }
        char chunk[kReadChunk];
        ssize_t n = ::recv(fd.get(), chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (n <= 0) return;  // closed by the client, or gone
        if (buffer.empty()) request_deadline = Clock::now() + ctx.options.request_timeout;
        buffer.append(chunk, static_cast<size_t>(n));
    }
}

}  // namespace vmm::api::detail
