// Endpoint table and strict validation of request bodies (see api/routes.h).
#include "api/routes.h"

#include <array>
#include <charconv>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace vmm::api {
namespace {

using nlohmann::json;

struct Endpoint {
    std::string_view name;
    std::string_view method;  // GET or PUT
    // nullptr: the endpoint takes no body (empty or "{}" accepted).
    RouteResult (*parse_body)(const json& body);
    VmRequest (*make)();
};

template <typename T>
VmRequest make() {
    return T{};
}

HttpReply bad_request(std::string_view message) { return error_reply(400, message); }

Result<uint64_t> page_aligned_bytes(const json& value, std::string_view field, bool allow_string) {
    uint64_t bytes = 0;
    if (value.is_number_unsigned()) {
        bytes = value.get<uint64_t>();
    } else if (value.is_number_integer()) {
        return Error::msg("\"{}\" must not be negative", field);
    } else if (value.is_string() && allow_string) {
        bytes = VMM_TRY_CTX(parse_size(value.get_ref<const std::string&>()), fmt::format("\"{}\"", field));
    } else {
        if (allow_string) return Error::msg("\"{}\" must be a whole number of bytes or a size such as \"512M\"", field);
        return Error::msg("\"{}\" must be a whole number of bytes", field);
    }
    if (bytes % kBalloonPageSize != 0) {
        return Error::msg("\"{}\" ({} bytes) must be a multiple of {}", field, bytes, kBalloonPageSize);
    }
    return bytes;
}

RouteResult parse_resize_balloon(const json& body) {
    for (const auto& [key, value] : body.items()) {
        if (key != "size") return bad_request(fmt::format("unknown field \"{}\" (expected \"size\")", key));
    }
    if (!body.contains("size")) return bad_request("missing field \"size\"");
    auto bytes = page_aligned_bytes(body.at("size"), "size", true);
    if (!bytes) return bad_request(bytes.error().message());
    return VmRequest{request::ResizeBalloon{*bytes}};
}

RouteResult parse_resize(const json& body) {
    for (const auto& [key, value] : body.items()) {
        if (key == "desired_vcpus" || key == "desired_ram") {
            return bad_request(fmt::format("\"{}\": resizing vCPUs or RAM is not supported", key));
        }
        if (key != "desired_balloon") {
            return bad_request(fmt::format("unknown field \"{}\" (expected \"desired_balloon\")", key));
        }
    }
    if (!body.contains("desired_balloon")) return bad_request("missing field \"desired_balloon\"");
    auto bytes = page_aligned_bytes(body.at("desired_balloon"), "desired_balloon", false);
    if (!bytes) return bad_request(bytes.error().message());
    return VmRequest{request::ResizeBalloon{*bytes}};
}

Result<std::string> string_field(const json& value, std::string_view field) {
    if (!value.is_string()) return Error::msg("\"{}\" must be a string", field);
    const auto& text = value.get_ref<const std::string&>();
    if (text.empty()) return Error::msg("\"{}\" must not be empty", field);
    if (text.size() > 4096) return Error::msg("\"{}\" is longer than 4096 bytes", field);
    return text;
}

// cloud-hypervisor's DeviceConfig: path (required), id; its other fields name
// features this VMM does not have and are refused rather than ignored.
RouteResult parse_add_device(const json& body) {
    VfioDeviceConfig device;
    for (const auto& [key, value] : body.items()) {
        if (key == "path") {
            auto path = string_field(value, "path");
            if (!path) return bad_request(path.error().message());
            device.path = *path;
        } else if (key == "id") {
            auto id = string_field(value, "id");
            if (!id) return bad_request(id.error().message());
            device.id = *id;
        } else if (key == "iommu" || key == "pci_segment" || key == "x_nv_gpudirect_clique") {
            return bad_request(fmt::format("\"{}\" is not supported", key));
        } else {
            return bad_request(fmt::format("unknown field \"{}\" (expected \"path\" and optionally \"id\")", key));
        }
    }
    if (device.path.empty()) return bad_request("missing field \"path\"");
    return VmRequest{request::AddDevice{device}};
}

RouteResult parse_remove_device(const json& body) {
    std::string id;
    for (const auto& [key, value] : body.items()) {
        if (key != "id") return bad_request(fmt::format("unknown field \"{}\" (expected \"id\")", key));
        auto text = string_field(value, "id");
        if (!text) return bad_request(text.error().message());
        id = *text;
    }
    if (id.empty()) return bad_request("missing field \"id\"");
    return VmRequest{request::RemoveDevice{id}};
}

constexpr std::array kEndpoints{
    Endpoint{"vmm.ping", "GET", nullptr, make<request::Ping>},
    Endpoint{"vmm.shutdown", "PUT", nullptr, make<request::ShutdownVmm>},
    Endpoint{"vm.info", "GET", nullptr, make<request::GetInfo>},
    Endpoint{"vm.counters", "GET", nullptr, make<request::GetCounters>},
    Endpoint{"vm.pause", "PUT", nullptr, make<request::Pause>},
    Endpoint{"vm.resume", "PUT", nullptr, make<request::Resume>},
    Endpoint{"vm.shutdown", "PUT", nullptr, make<request::ShutdownVm>},
    Endpoint{"vm.reboot", "PUT", nullptr, make<request::Reboot>},
    Endpoint{"vm.power-button", "PUT", nullptr, make<request::PowerButton>},
    Endpoint{"vm.resize", "PUT", parse_resize, nullptr},
    Endpoint{"vm.resize-balloon", "PUT", parse_resize_balloon, nullptr},
    Endpoint{"vm.balloon-statistics", "GET", nullptr, make<request::GetBalloonStatistics>},
    Endpoint{"vm.add-device", "PUT", parse_add_device, nullptr},
    Endpoint{"vm.remove-device", "PUT", parse_remove_device, nullptr},
};

bool blank(std::string_view s) {
    return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

std::vector<EndpointInfo> endpoint_list() {
    std::vector<EndpointInfo> out;
    for (const auto& e : kEndpoints) out.push_back({e.name, e.method});
    return out;
}

RouteResult route_request(const HttpRequest& request) {
    std::string_view path = request.path;
    if (path.substr(0, kApiPrefix.size()) != kApiPrefix) {
        return error_reply(404, fmt::format("unknown path {} (the API is under {})", path, kApiPrefix));
    }
    path.remove_prefix(kApiPrefix.size());
    const Endpoint* endpoint = nullptr;
    for (const auto& e : kEndpoints) {
        if (e.name == path) endpoint = &e;
    }
    if (!endpoint) return error_reply(404, fmt::format("unknown endpoint {}", request.path));
    if (request.method != endpoint->method) {
        HttpReply reply = error_reply(405, fmt::format("{} takes {}, not {}", request.path, endpoint->method,
                                                       request.method));
        reply.extra_headers.emplace_back("Allow", std::string(endpoint->method));
        return reply;
    }
    if (!endpoint->parse_body) {
        if (blank(request.body)) return endpoint->make();
        json body = json::parse(request.body, nullptr, false);
        if (body.is_discarded()) return bad_request("malformed JSON body");
        if (!body.is_object() || !body.empty()) return bad_request(fmt::format("{} takes no body", request.path));
        return endpoint->make();
    }
    if (blank(request.body)) return bad_request(fmt::format("{} needs a JSON object body", request.path));
    json body = json::parse(request.body, nullptr, false);
    if (body.is_discarded()) return bad_request("malformed JSON body");
    if (!body.is_object()) return bad_request("the body must be a JSON object");
    return endpoint->parse_body(body);
}

}  // namespace vmm::api
