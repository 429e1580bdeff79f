// Strict HTTP/1.1 request parsing and response serialization (see api/http.h).
#include "api/http.h"

#include <algorithm>
#include <charconv>
#include <variant>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace vmm::api {
namespace {

constexpr size_t kMaxContentLengthDigits = 18;  // fits uint64 with room; anything longer is absurd

bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string to_lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), lower);
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return lower(x) == lower(y);
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

std::optional<uint64_t> parse_digits(std::string_view s, size_t max_digits) {
    if (s.empty() || s.size() > max_digits) return std::nullopt;
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
    return v;
}

ParseOutcome fail(int status, std::string message) {
    ParseOutcome out;
    out.kind = ParseOutcome::Kind::error;
    out.status = status;
    out.message = std::move(message);
    return out;
}

// Splits the next CRLF-terminated line off `data` at `pos`. nullopt: incomplete.
// A bare LF or a stray CR is an error (status 400) reported through `bad`.
std::optional<std::string_view> next_line(std::string_view data, size_t& pos, bool& bad) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string_view::npos) return std::nullopt;
    if (nl == pos || data[nl - 1] != '\r') {
        bad = true;
        return std::nullopt;
    }
    std::string_view line = data.substr(pos, nl - 1 - pos);
    pos = nl + 1;
    if (line.find('\r') != std::string_view::npos) bad = true;
    return line;
}

bool has_control_chars(std::string_view s) {
    return std::any_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && c != '\t') || u == 0x7f;
    });
}

ParseOutcome parse_request_line(std::string_view line, HttpRequest& req) {
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
        return fail(400, "malformed request line");
    }
    std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    if (method.empty() || !std::all_of(method.begin(), method.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
        return fail(400, "malformed request method");
    }
    if (target.empty() || target.front() != '/' ||
        !std::all_of(target.begin(), target.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
        return fail(400, "malformed request target");
    }
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.') {
        return fail(400, "malformed HTTP version");
    }
    if (version != "HTTP/1.1" && version != "HTTP/1.0") return fail(505, "only HTTP/1.1 and HTTP/1.0 are supported");
    req.method = std::string(method);
    req.path = std::string(target.substr(0, target.find('?')));
    req.keep_alive = version == "HTTP/1.1";
    return {};
}

void apply_connection_header(std::string_view value, HttpRequest& req) {
    while (!value.empty()) {
        size_t comma = value.find(',');
        std::string_view token = trim(value.substr(0, comma));
        if (iequals(token, "close")) req.keep_alive = false;
        if (iequals(token, "keep-alive")) req.keep_alive = true;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
}

// Checks the headers that shape the message; returns the body length.
std::variant<uint64_t, ParseOutcome> body_length(HttpRequest& req, const HttpLimits& limits) {
    std::optional<uint64_t> length;
    for (const auto& [name, value] : req.headers) {
        if (name == "transfer-encoding") {
            return fail(501, "Transfer-Encoding is not supported; send the body with Content-Length");
        }
        if (name == "content-length") {
            auto v = parse_digits(value, kMaxContentLengthDigits);
            if (!v) return fail(400, "malformed Content-Length");
            if (length && *length != *v) return fail(400, "conflicting Content-Length headers");
            length = v;
        }
        if (name == "connection") apply_connection_header(value, req);
    }
    uint64_t n = length.value_or(0);
    if (n > limits.max_body_bytes) {
        return fail(413, fmt::format("request body of {} bytes exceeds the limit of {} bytes", n,
                                     limits.max_body_bytes));
    }
    return n;
}

}  // namespace

const std::string* HttpRequest::header(std::string_view lower_name) const {
    for (const auto& [name, value] : headers) {
        if (name == lower_name) return &value;
    }
    return nullptr;
}

ParseOutcome parse_request(std::string_view data, const HttpLimits& limits) {
    size_t pos = 0;
    // RFC 9112 2.2: ignore empty lines before the request line.
    while (data.substr(pos, 2) == "\r\n") pos += 2;
    const size_t start = pos;
    ParseOutcome out;
    bool bad = false;
    auto line = next_line(data, pos, bad);
    if (bad) return fail(400, "lines must end with CRLF");
    if (!line) {
        if (data.size() - start > limits.max_line_bytes) return fail(414, "request line too long");
        return out;
    }
    if (line->size() > limits.max_line_bytes) return fail(414, "request line too long");
    if (auto err = parse_request_line(*line, out.request); err.kind == ParseOutcome::Kind::error) return err;

    for (;;) {
        line = next_line(data, pos, bad);
        if (bad) return fail(400, "lines must end with CRLF");
        if (!line) {
            size_t pending = data.size() - pos;
            if (pending > limits.max_line_bytes || data.size() - start > limits.max_head_bytes) {
                return fail(431, "request headers too large");
            }
            return ParseOutcome{};
        }
        if (pos - start > limits.max_head_bytes || line->size() > limits.max_line_bytes) {
            return fail(431, "request headers too large");
        }
        if (line->empty()) break;
        if (out.request.headers.size() >= limits.max_headers) {
            return fail(431, fmt::format("more than {} request headers", limits.max_headers));
        }
        size_t colon = line->find(':');
        std::string_view name = line->substr(0, colon);
        if (colon == std::string_view::npos || name.empty() || !std::all_of(name.begin(), name.end(), is_tchar)) {
            return fail(400, "malformed header line");
        }
        std::string_view value = trim(line->substr(colon + 1));
        if (has_control_chars(value)) return fail(400, "control characters in a header value");
        out.request.headers.emplace_back(to_lower(name), std::string(value));
    }

    auto length = body_length(out.request, limits);
    if (auto* err = std::get_if<ParseOutcome>(&length)) return std::move(*err);
    uint64_t n = std::get<uint64_t>(length);
    if (data.size() - pos < n) {
        ParseOutcome wait;
        const std::string* expect = out.request.header("expect");
        wait.expects_continue = expect && iequals(*expect, "100-continue");
        return wait;
    }
    out.request.body = std::string(data.substr(pos, n));
    out.consumed = pos + n;
    out.kind = ParseOutcome::Kind::complete;
    return out;
}

const char* reason_phrase(int status) {
    switch (status) {
        case 100: return "Continue";
        case 200: return "OK";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 408: return "Request Timeout";
        case 409: return "Conflict";
        case 413: return "Payload Too Large";
        case 414: return "URI Too Long";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 503: return "Service Unavailable";
        case 505: return "HTTP Version Not Supported";
        default: return "Unknown";
    }
}

std::string serialize(const HttpReply& reply) {
    std::string out = fmt::format("HTTP/1.1 {} {}\r\nServer: vmm\r\n", reply.status, reason_phrase(reply.status));
    // RFC 9110 8.6: no Content-Length on 1xx and 204.
    if (reply.status >= 200 && reply.status != 204) out += fmt::format("Content-Length: {}\r\n", reply.body.size());
    if (!reply.body.empty()) out += "Content-Type: application/json\r\n";
    for (const auto& [name, value] : reply.extra_headers) out += fmt::format("{}: {}\r\n", name, value);
    if (reply.close) out += "Connection: close\r\n";
    out += "\r\n";
    out += reply.body;
    return out;
}

HttpReply error_reply(int status, std::string_view message) {
    nlohmann::json body = {{"error", message}};
    return HttpReply{status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), {}, false};
}

std::string serialize_request(std::string_view method, std::string_view target, std::string_view body) {
    std::string out = fmt::format("{} {} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
                                  "Connection: close\r\n",
                                  method, target);
    if (!body.empty() || method == "PUT") out += fmt::format("Content-Length: {}\r\n", body.size());
    if (!body.empty()) out += "Content-Type: application/json\r\n";
    out += "\r\n";
    out += body;
    return out;
}

Result<std::optional<HttpResponse>> parse_response(std::string_view data, bool at_eof, size_t max_bytes) {
    if (data.size() > max_bytes) return Error::msg("response larger than {} bytes", max_bytes);
    size_t head_end = data.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
        if (at_eof) return Error::msg("connection closed before a complete response");
        return std::optional<HttpResponse>{};
    }
    std::string_view head = data.substr(0, head_end + 2);
    size_t eol = head.find("\r\n");
    std::string_view status_line = head.substr(0, eol);
    // "HTTP/1.1 200 OK"
    if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ') {
        return Error::msg("malformed response status line");
    }
    auto status = parse_digits(status_line.substr(9, 3), 3);
    if (!status || *status < 100) return Error::msg("malformed response status code");
    std::optional<uint64_t> length;
    for (size_t pos = eol + 2; pos < head.size();) {
        size_t next = head.find("\r\n", pos);
        std::string_view line = head.substr(pos, next - pos);
        pos = next + 2;
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) return Error::msg("malformed response header");
        if (iequals(line.substr(0, colon), "content-length")) {
            length = parse_digits(trim(line.substr(colon + 1)), kMaxContentLengthDigits);
            if (!length) return Error::msg("malformed Content-Length in response");
        }
    }
    HttpResponse response;
    response.status = static_cast<int>(*status);
    std::string_view rest = data.substr(head_end + 4);
    bool no_body = *status == 204 || *status == 304 || *status < 200;
    if (no_body) return std::optional<HttpResponse>{std::move(response)};
    if (length) {
        if (rest.size() < *length) {
            if (at_eof) return Error::msg("connection closed before the whole response body arrived");
            return std::optional<HttpResponse>{};
        }
        response.body = std::string(rest.substr(0, *length));
        return std::optional<HttpResponse>{std::move(response)};
    }
    if (!at_eof) return std::optional<HttpResponse>{};
    response.body = std::string(rest);
    return std::optional<HttpResponse>{std::move(response)};
}

}  // namespace vmm::api
