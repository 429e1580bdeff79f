// The REST API on a Unix socket (cloud-hypervisor's paths under /api/v1). HTTP is
// served by cpp-httplib on its own threads; every request becomes a typed
// VmRequest sent to the VMM thread over a RequestChannel, and the reply becomes
// JSON. The API threads never touch devices or the VM.
#pragma once

#include <memory>
#include <string>

#include "common/result.h"
#include "vmm/request_channel.h"

namespace vmm::api {

struct ApiServerOptions {
    std::string socket_path;
    size_t max_body_bytes = 64 * 1024;  // larger bodies get 413
};

class ApiServer {
public:
    // Binds the socket (mode 0600; a stale socket is replaced; `<path>.lock`, held
    // with flock for the server's life, refuses a second VMM on the same path) and
    // starts serving. Returns once the socket accepts connections.
    [[nodiscard]] static Result<std::unique_ptr<ApiServer>> start(const ApiServerOptions& options,
                                                                  std::shared_ptr<RequestChannel> requests);
    // Stops serving, removes the socket and releases the lock.
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
