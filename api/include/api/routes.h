// The API's endpoints: HTTP request -> typed VmRequest (or an immediate error
// reply), and VmReply -> HTTP reply with a JSON body. No sockets here, and no
// access to the VM: the server sends the VmRequest over the RequestChannel.
#pragma once

#include <cstdint>
#include <string_view>
#include <variant>

#include "api/http.h"
#include "common/result.h"
#include "vmm/vm_requests.h"

namespace vmm::api {

inline constexpr std::string_view kApiPrefix = "/api/v1/";
inline constexpr uint64_t kBalloonPageSize = 4096;

// A request for the VMM thread, or the reply to send at once (400/404/405).
using RouteResult = std::variant<VmRequest, HttpReply>;

[[nodiscard]] RouteResult route_request(const HttpRequest& request);

// The reply to a request the VMM thread answered: Empty -> 204; PingInfo,
// VmInfo, DeviceCounters, BalloonInfo -> 200 JSON; RequestError -> 400/404/409/500.
HttpReply render_reply(const VmReply& reply);

// "1073741824", "512M", "4K", "1G" (powers of two) -> bytes.
[[nodiscard]] Result<uint64_t> parse_size(std::string_view text);

}  // namespace vmm::api
