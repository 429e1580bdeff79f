// REST request handling without the socket: the bytes a client sent go through
// the strict HTTP parser (api/src/http.cpp), pipelined requests one after the
// other as the connection loop does, then the endpoint table (route_request) and,
// for a request the VMM thread would answer, a reply of an input-chosen kind with
// input-chosen strings through render_reply, and the serialised response back
// through the client's parse_response. Checks:
//   - a complete request consumed a non-empty prefix of what was there, and every
//     shorter prefix is "need more" (bytes arriving in pieces parse the same);
//   - every error has a 4xx/5xx status;
//   - every response the server would write parses, with the same status and body.
//
// Input: u8 limits (bit0: tiny limits), u8 reply kind, u16 string length, string,
// u16 split point, then the client's bytes.
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <variant>

#include "api/http.h"
#include "api/routes.h"
#include "support/fuzz_common.h"
#include "support/fuzz_input.h"

using namespace vmm;
using namespace vmm::api;

namespace {

// The VMM thread's answer, of an input-chosen kind whatever the request was:
// render_reply must cope with every reply and every string.
VmReply make_reply(uint8_t kind, const std::string& text) {
    switch (kind % 8) {
        case 0: return Empty{};
        case 1: return PingInfo{text, 42, {text, "hyperalloc"}};
        case 2: {
            VmInfo info;
            info.state = static_cast<VmState>(kind / 8 % 4);
            info.config.payload.kernel = text;
            info.config.payload.cmdline = text;
            info.config.disks.push_back(DiskConfig{});
            info.config.disks.back().path = text;
            info.config.disks.back().id = text;
            info.memory_actual_size = text.size();
            info.devices.push_back(AssignedDevice{text, "0000:00:05.0", text});
            return info;
        }
        case 3: return DeviceCounters{{text, {{text, 7}, {"rx_bytes", UINT64_MAX}}}};
        case 4: {
            BalloonInfo b;
            b.kind = "virtio-balloon";
            b.target_bytes = UINT64_MAX;
            b.statistics = BalloonStatistics{{{text, 1}, {"free_memory", 123}},
                                             std::chrono::system_clock::time_point{}};
            return b;
        }
        case 5: {
            BalloonInfo b;
            b.kind = "hyperalloc";
            HyperAllocInfo h;
            h.installs_per_s = (kind & 0x80) ? std::numeric_limits<double>::infinity() : 0.5;
            h.zones = {{text, 1, 2}};
            h.guest_free_bytes = 1;
            b.hyperalloc = h;
            return b;
        }
        case 6: return AssignedDevice{text, text, text};
        default: return RequestError{static_cast<RequestError::Kind>(kind / 8 % 4), text};
    }
}

// What the client would read back from `reply`.
void check_round_trip(const HttpReply& reply) {
    FUZZ_CHECK(reply.status >= 100 && reply.status <= 599);
    std::string wire = serialize(reply);
    auto parsed = parse_response(wire, true, wire.size() + 1);
    FUZZ_CHECK_MSG(parsed.has_value(), parsed ? "" : parsed.error().message().c_str());
    FUZZ_CHECK(parsed->has_value());
    FUZZ_CHECK((*parsed)->status == reply.status);
    if (reply.status != 204) FUZZ_CHECK((*parsed)->body == reply.body);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vmm::fuzz::FuzzInput in(data, size);
    HttpLimits limits;
    if (in.flag()) limits = HttpLimits{64, 256, 4, 128};
    uint8_t reply_kind = in.u8();
    std::string text(in.chars(in.u16() % 256));
    uint16_t split = in.u16();
    std::string_view stream = in.chars(in.remaining());

    for (int requests = 0; requests < 16 && !stream.empty(); ++requests) {
        ParseOutcome out = parse_request(stream, limits);
        if (out.kind == ParseOutcome::Kind::need_more) break;
        if (out.kind == ParseOutcome::Kind::error) {
            FUZZ_CHECK(out.status >= 400 && out.status <= 599 && !out.message.empty());
            check_round_trip(error_reply(out.status, out.message));
            break;
        }
        FUZZ_CHECK(out.consumed > 0 && out.consumed <= stream.size());
        const HttpRequest& req = out.request;
        FUZZ_CHECK(!req.method.empty() && !req.path.empty() && req.path.front() == '/');
        FUZZ_CHECK(req.body.size() <= limits.max_body_bytes);
        // Bytes arriving in pieces: any shorter prefix is still incomplete.
        size_t cut = split % out.consumed;
        ParseOutcome partial = parse_request(stream.substr(0, cut), limits);
        FUZZ_CHECK_MSG(partial.kind == ParseOutcome::Kind::need_more,
                       partial.kind == ParseOutcome::Kind::error ? partial.message.c_str()
                                                                 : "complete on a prefix");

        RouteResult routed = route_request(req);
        HttpReply reply;
        if (auto* immediate = std::get_if<HttpReply>(&routed)) {
            FUZZ_CHECK(immediate->status >= 400);
            reply = *immediate;
        } else {
            reply = render_reply(make_reply(reply_kind, text));
        }
        check_round_trip(reply);
        if (!req.keep_alive) break;
        stream.remove_prefix(out.consumed);
        reply_kind = static_cast<uint8_t>(reply_kind * 31 + 7);
    }
    return 0;
}
