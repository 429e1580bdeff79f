#include <catch2/catch.hpp>

#include <string>

#include "api/http.h"

using namespace vmm::api;
using Kind = ParseOutcome::Kind;

namespace {

ParseOutcome parse(const std::string& data, HttpLimits limits = {}) { return parse_request(data, limits); }

}  // namespace

TEST_CASE("a complete GET is parsed with its headers", "[api][http]") {
    std::string data = "GET /api/v1/vm.info?x=1 HTTP/1.1\r\nHost: localhost\r\nX-Thing:  a b \r\n\r\n";
    auto out = parse(data);
    REQUIRE(out.kind == Kind::complete);
    CHECK(out.consumed == data.size());
    CHECK(out.request.method == "GET");
    CHECK(out.request.path == "/api/v1/vm.info");
    CHECK(out.request.keep_alive);
    REQUIRE(out.request.header("x-thing"));
    CHECK(*out.request.header("x-thing") == "a b");
    CHECK(out.request.header("host"));
    CHECK(out.request.body.empty());
}

TEST_CASE("a PUT body is taken by Content-Length and the next request stays buffered", "[api][http]") {
    std::string first = "PUT /api/v1/vm.resize-balloon HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"size\": 0}\n";
    std::string second = "GET /api/v1/vmm.ping HTTP/1.1\r\nConnection: close\r\n\r\n";
    auto out = parse(first + second);
    REQUIRE(out.kind == Kind::complete);
    CHECK(out.request.body == "{\"size\": 0}\n");
    CHECK(out.consumed == first.size());
    auto next = parse((first + second).substr(out.consumed));
    REQUIRE(next.kind == Kind::complete);
    CHECK(next.request.path == "/api/v1/vmm.ping");
    CHECK_FALSE(next.request.keep_alive);
}

TEST_CASE("incomplete requests ask for more bytes", "[api][http]") {
    std::string full = "PUT /api/v1/vm.pause HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
    for (size_t n = 0; n < full.size(); ++n) {
        INFO("prefix of " << n << " bytes");
        CHECK(parse(full.substr(0, n)).kind == Kind::need_more);
    }
    CHECK(parse(full).kind == Kind::complete);
}

TEST_CASE("Expect: 100-continue is reported while the body is missing", "[api][http]") {
    auto out = parse("PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    CHECK(out.kind == Kind::need_more);
    CHECK(out.expects_continue);
    CHECK_FALSE(parse("PUT /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n").expects_continue);
}

TEST_CASE("HTTP/1.0 closes unless it asks for keep-alive", "[api][http]") {
    CHECK_FALSE(parse("GET / HTTP/1.0\r\n\r\n").request.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").request.keep_alive);
    CHECK_FALSE(parse("GET / HTTP/1.1\r\nConnection: foo, CLOSE\r\n\r\n").request.keep_alive);
}

TEST_CASE("oversized parts get the matching status", "[api][http]") {
    HttpLimits limits;
    limits.max_line_bytes = 100;
    limits.max_head_bytes = 300;
    limits.max_headers = 4;
    limits.max_body_bytes = 10;
    SECTION("request line, complete or not") {
        std::string line = "GET /" + std::string(200, 'a');
        CHECK(parse(line, limits).status == 414);
        CHECK(parse(line + " HTTP/1.1\r\n\r\n", limits).status == 414);
    }
    SECTION("a header line") {
        CHECK(parse("GET / HTTP/1.1\r\nX: " + std::string(150, 'b'), limits).status == 431);
    }
    SECTION("the whole head") {
        std::string head = "GET / HTTP/1.1\r\n";
        for (int i = 0; i < 4; ++i) head += "X" + std::to_string(i) + ": " + std::string(90, 'c') + "\r\n";
        CHECK(parse(head + "\r\n", limits).status == 431);
    }
    SECTION("too many headers") {
        std::string head = "GET / HTTP/1.1\r\n";
        for (int i = 0; i < 5; ++i) head += "X" + std::to_string(i) + ": y\r\n";
        CHECK(parse(head + "\r\n", limits).status == 431);
        std::string four = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        CHECK(parse(four, limits).kind == Kind::complete);
    }
    SECTION("a body over the limit is refused from the head alone") {
        auto out = parse("PUT / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", limits);
        CHECK(out.kind == Kind::error);
        CHECK(out.status == 413);
        CHECK(parse("PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", limits).kind == Kind::complete);
        CHECK(parse("PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", limits).status == 400);
    }
}

TEST_CASE("chunked and other transfer codings are refused", "[api][http]") {
    auto out = parse("PUT /api/v1/vm.pause HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
    CHECK(out.kind == Kind::error);
    CHECK(out.status == 501);
}

TEST_CASE("malformed requests are 400 (or 505 for other HTTP versions)", "[api][http]") {
    const char* bad[] = {
        "GET /x HTTP/1.1\n\n",                                  // bare LF
        "GET /x HTTP/1.1\r\nHost: a\n\r\n",                     // bare LF in headers
        "GET  /x HTTP/1.1\r\n\r\n",                             // double space
        "get /x HTTP/1.1\r\n\r\n",                              // lower-case method
        "GET x HTTP/1.1\r\n\r\n",                               // not origin-form
        "GET /x HTTX/1.1\r\n\r\n",                              // bad version
        "GET /x\r\n\r\n",                                       // HTTP/0.9 style
        "GET /x HTTP/1.1\r\nNoColon\r\n\r\n",                   // header without colon
        "GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n",               // space in a header name
        "GET /x HTTP/1.1\r\n folded: v\r\n\r\n",                // obsolete line folding
        "GET /x HTTP/1.1\r\nX: a\x01" "b\r\n\r\n",              // control character
        "PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",        // negative length
        "PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "\x16\x03\x01\x02\x05\x01\x07\x01\xfc\x03\x03\r\n\r\n",  // TLS-hello-like binary
    };
    for (const char* data : bad) {
        INFO(data);
        auto out = parse(data);
        CHECK(out.kind == Kind::error);
        CHECK(out.status == 400);
        CHECK_FALSE(out.message.empty());
    }
    CHECK(parse("GET /x HTTP/2.0\r\n\r\n").status == 505);
}

TEST_CASE("leading empty lines are skipped", "[api][http]") {
    auto out = parse("\r\n\r\nGET /x HTTP/1.1\r\n\r\n");
    REQUIRE(out.kind == Kind::complete);
    CHECK(out.request.path == "/x");
}

TEST_CASE("responses serialize with Content-Length, and none on 204", "[api][http]") {
    HttpReply reply = error_reply(405, "nope");
    reply.extra_headers.emplace_back("Allow", "GET");
    reply.close = true;
    std::string text = serialize(reply);
    CHECK(text.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0) == 0);
    CHECK(text.find("\r\nAllow: GET\r\n") != std::string::npos);
    CHECK(text.find("\r\nConnection: close\r\n") != std::string::npos);
    CHECK(text.find("Content-Length: " + std::to_string(reply.body.size()) + "\r\n") != std::string::npos);
    CHECK(reply.body == R"({"error":"nope"})");
    std::string empty = serialize(HttpReply{204, {}, {}, false});
    CHECK(empty.find("Content-Length") == std::string::npos);
}

TEST_CASE("the client's response parser round-trips the server's output", "[api][http]") {
    HttpReply reply{200, R"({"a":1})", {}, false};
    std::string text = serialize(reply);
    for (size_t n = 0; n < text.size(); ++n) {
        auto partial = parse_response(text.substr(0, n), false, 1 << 20);
        REQUIRE(partial);
        CHECK_FALSE(partial->has_value());
    }
    auto full = parse_response(text, false, 1 << 20);
    REQUIRE(full);
    REQUIRE(full->has_value());
    CHECK((*full)->status == 200);
    CHECK((*full)->body == reply.body);
    auto no_content = parse_response(serialize(HttpReply{204, {}, {}, false}), false, 1 << 20);
    REQUIRE(no_content);
    REQUIRE(no_content->has_value());
    CHECK((*no_content)->status == 204);
    CHECK_FALSE(parse_response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", true, 1 << 20));
    CHECK_FALSE(parse_response("garbage\r\n\r\n", false, 1 << 20));
    CHECK_FALSE(parse_response(text, false, 10));
}

TEST_CASE("client requests are well-formed for the server's parser", "[api][http]") {
    std::string text = serialize_request("PUT", "/api/v1/vm.resize", R"({"desired_balloon":0})");
    auto out = parse(text);
    REQUIRE(out.kind == Kind::complete);
    CHECK(out.consumed == text.size());
    CHECK(out.request.method == "PUT");
    CHECK(out.request.body == R"({"desired_balloon":0})");
    CHECK_FALSE(out.request.keep_alive);
}
