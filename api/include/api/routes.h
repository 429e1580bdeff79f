// The API's endpoints: HTTP request -> typed VmRequest (or an immediate error
// reply), and VmReply -> HTTP reply with a JSON body. No sockets here, and no
// access to the VM: the server sends the VmRequest over the RequestChannel.
#pragma once

#include <cstdint>
#include <string_view>
#include <variant>
#include <vector>

#include "api/http.h"
#include "common/result.h"
#include "common/size.h"
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

// The endpoint table: name (under kApiPrefix) and its method, for docs checks.
struct EndpointInfo {
    std::string_view name;
    std::string_view method;
};
std::vector<EndpointInfo> endpoint_list();

using vmm::parse_size;  // common/size.h: bytes or K/M/G/T

}  // namespace vmm::api
