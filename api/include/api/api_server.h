// The REST API on a Unix socket (cloud-hypervisor's paths under /api/v1). HTTP is
// our own strict HTTP/1.1 (api/http.h; Debian's cpp-httplib 0.11 cannot listen on
// a Unix socket), served by an accept thread plus one thread per connection, at
// most max_connections of them (beyond that: 503 and close). Every request
// becomes a typed VmRequest sent to the VMM thread over a RequestChannel, and the
// reply becomes JSON. The API threads never touch devices or the VM; a slow or
// vanished client only ever holds its own connection thread, until a timeout.
// Each thread installs its seccomp filter (docs/seccomp.md) first: the accept
// thread api_accept, each connection thread the narrower api_connection (no
// accept, no new threads); neither may create sockets or open files.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "common/result.h"
#include "vmm/request_channel.h"
#include "vmm/vm_config.h"

namespace vmm::api {

struct ApiServerOptions {
    std::string socket_path;
    size_t max_body_bytes = 64 * 1024;  // larger bodies get 413
    size_t max_connections = 32;        // connections served at once; more get 503
    std::chrono::milliseconds idle_timeout{5000};      // a connection with no request under way
    std::chrono::milliseconds request_timeout{10000};  // from a request's first byte to its last (408)
    std::chrono::milliseconds write_timeout{5000};     // a client that does not read its reply
    std::chrono::milliseconds vmm_timeout{10000};      // RequestChannel::call (503 when exceeded)
    // The API threads' filters (--seccomp). start() fails when the accept thread
    // cannot install its filter; a connection thread that cannot is closed unserved.
    SeccompMode seccomp = SeccompMode::on;
};

class ApiServer {
public:
    // Binds the socket (mode 0600; a stale socket is replaced; `<path>.lock`, held
    // with flock for the server's life, refuses a second VMM on the same path) and
    // starts serving. Returns once the socket accepts connections.
    [[nodiscard]] static Result<std::unique_ptr<ApiServer>> start(const ApiServerOptions& options,
                                                                  std::shared_ptr<RequestChannel> requests);
    // Stops serving, removes the socket and releases the lock. Connections are
    // closed at once, except one whose request is with the VMM thread: it waits
    // for the reply (at most vmm_timeout), so close the RequestChannel first when
    // the VMM thread is the one destroying the server.
    ~ApiServer();
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    const std::string& socket_path() const;

private:
    struct Impl;
    explicit ApiServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

}  // namespace vmm::api
