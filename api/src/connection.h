// One API connection: reads requests, has the VMM thread answer them, writes the
// replies (private to api/).
#pragma once

#include <memory>

#include "api/api_server.h"
#include "api/http.h"
#include "common/unique_fd.h"
#include "vmm/request_channel.h"

namespace vmm::api::detail {

struct ConnectionContext {
    const ApiServerOptions& options;
    HttpLimits limits;
    RequestChannel& requests;
    int stop_fd;  // readable once the server is stopping
};

// Serves `fd` (non-blocking) until the client closes, a timeout, an error, a
// "Connection: close", or the server stops.
void serve_connection(const ConnectionContext& ctx, UniqueFd fd);

// Answers one parsed request (routing, VMM call, rendering).
HttpReply answer(const ConnectionContext& ctx, const HttpRequest& request);

}  // namespace vmm::api::detail
