// A small HTTP client over the API's Unix socket, for `vmm remote` and the tests:
// one request per connection (Connection: close), bounded by a timeout.
#pragma once

#include <chrono>
#include <string>
#include <utility>

#include "common/result.h"

namespace vmm::api {

struct HttpResponse {
    int status = 0;
    std::string body;
};

class ApiClient {
public:
    explicit ApiClient(std::string socket_path, std::chrono::milliseconds timeout = std::chrono::seconds(30))
        : m_socket_path(std::move(socket_path)), m_timeout(timeout) {}
    // path is relative to the API root, e.g. "vm.info" -> GET /api/v1/vm.info
    [[nodiscard]] Result<HttpResponse> get(const std::string& path) const;
    [[nodiscard]] Result<HttpResponse> put(const std::string& path, const std::string& json_body = "") const;
    // Any method, for tests of the server's 405 answers.
    [[nodiscard]] Result<HttpResponse> request(const std::string& method, const std::string& path,
                                               const std::string& json_body) const;

private:
    std::string m_socket_path;
    std::chrono::milliseconds m_timeout;  // connect, send and receive, each
};

}  // namespace vmm::api
