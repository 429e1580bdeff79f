// A small, strict HTTP/1.1 for the API socket (in the manner of micro_http, which
// cloud-hypervisor and Firecracker use). Only what the API needs: origin-form
// targets, CRLF line ends, Content-Length bodies; no chunked transfer coding.
// Every limit is hard, so a client cannot make the server buffer without bound.
// Pure functions: the socket code lives in api_server.cpp / api_client.cpp.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/api_client.h"
#include "common/result.h"

namespace vmm::api {

struct HttpLimits {
    size_t max_line_bytes = 8 * 1024;   // request line, and each header line
    size_t max_head_bytes = 16 * 1024;  // request line plus all headers
    size_t max_headers = 64;
    size_t max_body_bytes = 64 * 1024;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
    std::string method;
    std::string path;   // target without the query string
    HttpHeaders headers;  // names lower-cased, values trimmed
    std::string body;
    bool keep_alive = true;  // false after "Connection: close" (or HTTP/1.0 without keep-alive)

    // The first header of that (lower-case) name.
    const std::string* header(std::string_view lower_name) const;
};

// What the parser found at the front of the buffered bytes.
struct ParseOutcome {
    enum class Kind {
        need_more,  // no complete request yet
        complete,   // `request` holds one request; `consumed` bytes belong to it
        error,      // answer `status` with `message`, then close the connection
    };
    Kind kind = Kind::need_more;
    size_t consumed = 0;
    HttpRequest request;
    int status = 0;
    std::string message;
    // need_more with the head parsed: the client waits for "100 Continue".
    bool expects_continue = false;
};

// Parses one request from the start of `data` (several may be pipelined: the
// rest stays for the next call). Bodies over the limit are refused (413) from
// the head alone, before any of the body is read.
ParseOutcome parse_request(std::string_view data, const HttpLimits& limits);

// A response the server writes.
struct HttpReply {
    int status = 200;
    std::string body;            // JSON, or empty
    HttpHeaders extra_headers;   // e.g. Allow for 405
    bool close = false;          // "Connection: close" and close after writing
};

const char* reason_phrase(int status);
std::string serialize(const HttpReply& reply);
// {"error": "<message>"} with the given status.
HttpReply error_reply(int status, std::string_view message);

// Builds the bytes of one client request (Connection: close).
std::string serialize_request(std::string_view method, std::string_view target, std::string_view body);
// Parses a complete response (status line, headers, Content-Length body).
// Returns nullopt while `data` is incomplete (a response without Content-Length
// ends at EOF: `at_eof`); an Error when it is malformed or over `max_bytes`.
[[nodiscard]] Result<std::optional<HttpResponse>> parse_response(std::string_view data, bool at_eof,
                                                                 size_t max_bytes);

}  // namespace vmm::api
