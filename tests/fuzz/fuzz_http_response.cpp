// The client side of the REST API (`vmm remote`, api/src/http.cpp): responses as a
// server might send them through parse_response, complete or cut short, and the
// client's own requests (serialize_request) through the server's parser, which
// must accept them unchanged.
//
// Input: u8 flags (bit0 at_eof, bit1 PUT), u16 max_bytes, u8 target length, the
// target, u16 body length, the body, then the response bytes.
#include <algorithm>
#include <string>
#include <string_view>

#include "api/http.h"
#include "support/fuzz_common.h"
#include "support/fuzz_input.h"

using namespace vmm;
using namespace vmm::api;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vmm::fuzz::FuzzInput in(data, size);
    uint8_t flags = in.u8();
    size_t max_bytes = in.u16();
    std::string target = "/api/v1/" + std::string(in.chars(in.u8()));
    std::string body(in.chars(in.u16()));
    std::string_view response = in.chars(in.remaining());

    auto parsed = parse_response(response, flags & 1, max_bytes);
    if (parsed && parsed->has_value()) {
        const HttpResponse& r = **parsed;
        FUZZ_CHECK(r.status >= 100 && r.status <= 999);
        FUZZ_CHECK(r.body.size() <= response.size());
    } else if (!parsed) {
        FUZZ_CHECK(!parsed.error().message().empty());
    } else {
        FUZZ_CHECK(!(flags & 1));  // at EOF a response is complete or an error
    }

    // The client's request as the server parses it: a target of visible ASCII
    // without '?' comes back unchanged.
    bool plain = std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f && c != '?'; });
    std::string method = (flags & 2) ? "PUT" : "GET";
    std::string wire = serialize_request(method, target, body);
    HttpLimits limits;
    ParseOutcome out = parse_request(wire, limits);
    if (plain && body.size() <= limits.max_body_bytes) {
        FUZZ_CHECK_MSG(out.kind == ParseOutcome::Kind::complete, out.message.c_str());
        FUZZ_CHECK(out.consumed == wire.size());
        FUZZ_CHECK(out.request.method == method && out.request.path == target && out.request.body == body);
        FUZZ_CHECK(!out.request.keep_alive);  // the client sends Connection: close
    }
    return 0;
}
