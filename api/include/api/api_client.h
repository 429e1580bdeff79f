// A small HTTP client over the API's Unix socket, for `vmm remote` and the tests.
#pragma once

#include <string>

#include "common/result.h"

namespace vmm::api {

struct HttpResponse {
    int status = 0;
    std::string body;
};

class ApiClient {
public:
    explicit ApiClient(std::string socket_path) : m_socket_path(std::move(socket_path)) {}
    // path is relative to the API root, e.g. "vm.info" -> GET /api/v1/vm.info
    [[nodiscard]] Result<HttpResponse> get(const std::string& path) const;
    [[nodiscard]] Result<HttpResponse> put(const std::string& path, const std::string& json_body = "") const;

private:
    std::string m_socket_path;
};

}  // namespace vmm::api
