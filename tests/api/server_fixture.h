// A real ApiServer on a temporary socket, with a FakeVmm behind it.
#pragma once

#include <catch2/catch.hpp>

#include <functional>

#include <nlohmann/json.hpp>

#include "api/api_client.h"
#include "api/api_server.h"
#include "fake_vmm.h"
#include "raw_client.h"

namespace vmm::test {

inline api::ApiServerOptions fast_options(const std::string& path) {
    api::ApiServerOptions o;
    o.socket_path = path;
    o.max_body_bytes = 4096;
    o.idle_timeout = std::chrono::milliseconds(500);
    o.request_timeout = std::chrono::milliseconds(1000);
    o.vmm_timeout = std::chrono::milliseconds(2000);
    return o;
}

struct ServerFixture {
    TempDir dir;
    FakeVmm vmm;
    std::string path = dir.path() + "/api.sock";
    std::unique_ptr<api::ApiServer> server;

    explicit ServerFixture(const std::function<void(api::ApiServerOptions&)>& tweak = {}) {
        api::ApiServerOptions o = fast_options(path);
        if (tweak) tweak(o);
        auto started = api::ApiServer::start(o, vmm.channel());
        if (!started) FAIL(started.error().message());
        server = std::move(*started);
    }
    api::ApiClient client() const { return api::ApiClient(path, std::chrono::seconds(10)); }

    api::HttpResponse get(const std::string& endpoint) const {
        auto r = client().get(endpoint);
        if (!r) FAIL(r.error().message());
        return *r;
    }
    api::HttpResponse put(const std::string& endpoint, const std::string& body = "") const {
        auto r = client().put(endpoint, body);
        if (!r) FAIL(r.error().message());
        return *r;
    }
};

inline nlohmann::json json_of(const api::HttpResponse& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded()) FAIL("not JSON: " << r.body);
    return j;
}

// Every error body is {"error": "<one line>"}.
inline std::string error_of(const api::HttpResponse& r) {
    auto j = json_of(r);
    REQUIRE(j.is_object());
    REQUIRE(j.size() == 1);
    REQUIRE(j["error"].is_string());
    auto message = j["error"].get<std::string>();
    CHECK(message.find('\n') == std::string::npos);
    CHECK_FALSE(message.empty());
    return message;
}

}  // namespace vmm::test
