// Every endpoint over the real socket, and every error class.
#include "server_fixture.h"

using namespace vmm;
using namespace vmm::test;

TEST_CASE("GET endpoints answer 200 with JSON", "[api]") {
    ServerFixture f;
    auto ping = f.get("vmm.ping");
    CHECK(ping.status == 200);
    CHECK(json_of(ping)["version"] == "9.9.9");
    CHECK(json_of(ping)["pid"] == 1234);

    auto info = f.get("vm.info");
    REQUIRE(info.status == 200);
    auto j = json_of(info);
    CHECK(j["state"] == "Running");
    CHECK(j["config"]["memory"]["size"] == FakeVmm::kRam);
    CHECK(j["memory_actual_size"] == FakeVmm::kRam);
    CHECK(j["balloon"]["kind"] == "virtio-balloon");

    auto counters = f.get("vm.counters");
    CHECK(counters.status == 200);
    CHECK(json_of(counters) == nlohmann::json{{"net0", {{"rx_bytes", 7}}}});

    auto stats = f.get("vm.balloon-statistics");
    CHECK(stats.status == 200);
    CHECK(json_of(stats)["free_memory"] == 123);
    CHECK(json_of(stats)["statistics_updated_at"] == 5);
    CHECK(json_of(stats)["target_mib"] == 0);
}

TEST_CASE("PUT endpoints answer 204 and reach the VMM thread as typed requests", "[api]") {
    ServerFixture f;
    for (const char* endpoint : {"vm.shutdown", "vm.reboot", "vm.power-button", "vmm.shutdown"}) {
        INFO(endpoint);
        auto r = f.put(endpoint);
        CHECK(r.status == 204);
        CHECK(r.body.empty());
    }
    auto reqs = f.vmm.requests();
    REQUIRE(reqs.size() == 4);
    CHECK(std::holds_alternative<request::ShutdownVm>(reqs[0]));
    CHECK(std::holds_alternative<request::Reboot>(reqs[1]));
    CHECK(std::holds_alternative<request::PowerButton>(reqs[2]));
    CHECK(std::holds_alternative<request::ShutdownVmm>(reqs[3]));
}

TEST_CASE("pause and resume, with 409 in the wrong state", "[api]") {
    ServerFixture f;
    CHECK(f.put("vm.pause").status == 204);
    CHECK(json_of(f.get("vm.info"))["state"] == "Paused");
    auto again = f.put("vm.pause");
    CHECK(again.status == 409);
    CHECK(error_of(again) == "already paused");
    CHECK(f.put("vm.resume", "{}").status == 204);
    CHECK(f.put("vm.resume").status == 409);
}

TEST_CASE("the balloon is resized by vm.resize-balloon and vm.resize", "[api]") {
    ServerFixture f;
    CHECK(f.put("vm.resize-balloon", R"({"size": 268435456})").status == 204);
    CHECK(json_of(f.get("vm.info"))["memory_actual_size"] == FakeVmm::kRam - (256u << 20));
    CHECK(f.put("vm.resize-balloon", R"({"size": "512M"})").status == 204);
    CHECK(json_of(f.get("vm.balloon-statistics"))["target_mib"] == 512);
    CHECK(f.put("vm.resize", R"({"desired_balloon": 0})").status == 204);
    CHECK(json_of(f.get("vm.balloon-statistics"))["target_pages"] == 0);
    // Larger than RAM: only the VMM knows; it says bad_request -> 400.
    auto big = f.put("vm.resize-balloon", R"({"size": "1G"})");
    CHECK(big.status == 400);
    CHECK(error_of(big) == "balloon larger than RAM");
}

TEST_CASE("a HyperAlloc balloon shows its block in vm.info and vm.balloon-statistics", "[api]") {
    ServerFixture f;
    f.vmm.hyperalloc = true;
    CHECK(f.put("vm.resize", R"({"desired_balloon": 4194304})").status == 204);
    auto info = json_of(f.get("vm.info"));
    const auto& b = info["balloon"];
    CHECK(b["kind"] == "hyperalloc");
    CHECK(b["actual_bytes"] == (4u << 20));
    CHECK_FALSE(b.contains("deflate_on_oom"));
    CHECK(b["hyperalloc"]["hard_reclaimed_bytes"] == (4u << 20));
    CHECK(b["hyperalloc"]["guest_free_bytes"] == FakeVmm::kRam / 2);
    CHECK(b["hyperalloc"]["page_cache_bytes"].is_null());
    CHECK(b["hyperalloc"]["zones"][0] == nlohmann::json{{"type", "DMA32"}, {"start_pfn", 4096}, {"pages", 258048}});
    CHECK(b["hyperalloc"]["host_rss_bytes"] == (42u << 20));
    auto stats = json_of(f.get("vm.balloon-statistics"));
    CHECK(stats["actual_mib"] == 4);
    CHECK(stats["hyperalloc"]["installs"] == 3);
    CHECK(stats["hyperalloc"]["installs_per_s"] == 1.5);
    CHECK_FALSE(stats.contains("free_memory"));
    // 4 KiB-aligned passes the API's check; the VMM thread knows the model and says 400.
    auto odd = f.put("vm.resize-balloon", R"({"size": "1M"})");
    CHECK(odd.status == 400);
    CHECK(error_of(odd) == "not a multiple of 2 MiB");
    CHECK(json_of(f.get("vm.info"))["balloon"]["target_bytes"] == (4u << 20));
}

TEST_CASE("bad bodies are 400 and never reach the VMM", "[api]") {
    ServerFixture f;
    const char* bodies[] = {"{", R"({"size": -4096})", R"({"size": 4095})", R"({"size": 4096, "extra": 1})",
                            R"([1])", R"({"size": "lots"})", ""};
    for (const char* body : bodies) {
        INFO(body);
        auto r = f.put("vm.resize-balloon", body);
        CHECK(r.status == 400);
        error_of(r);
    }
    CHECK(f.put("vm.resize", R"({"desired_vcpus": 4})").status == 400);
    CHECK(f.put("vm.pause", R"({"now": true})").status == 400);
    CHECK(f.vmm.count() == 0);
}

TEST_CASE("unknown paths are 404, wrong methods 405 with Allow", "[api]") {
    ServerFixture f;
    auto missing = f.get("vm.nothing");
    CHECK(missing.status == 404);
    error_of(missing);
    auto wrong = f.put("vm.info");
    CHECK(wrong.status == 405);
    error_of(wrong);
    auto raw = raw_exchange(f.path, "DELETE /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK(raw.rfind("HTTP/1.1 405 ", 0) == 0);
    CHECK(raw.find("\r\nAllow: PUT\r\n") != std::string::npos);
    CHECK(raw_exchange(f.path, "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").rfind("HTTP/1.1 404 ", 0) == 0);
    CHECK(f.vmm.count() == 0);
}

TEST_CASE("no VM: the VMM's not_found becomes 404", "[api]") {
    ServerFixture f;
    f.vmm.has_vm = false;
    auto r = f.get("vm.info");
    CHECK(r.status == 404);
    CHECK(error_of(r) == "no VM");
    CHECK(f.get("vmm.ping").status == 200);
}

TEST_CASE("a body over the limit is 413 without being read", "[api]") {
    ServerFixture f;  // max_body_bytes = 4096
    std::string big = R"({"size": ")" + std::string(8192, '1') + R"("})";
    auto r = f.put("vm.resize-balloon", big);
    CHECK(r.status == 413);
    error_of(r);
    // Announced but never sent: the answer comes from the head alone.
    auto raw = raw_exchange(f.path, "PUT /api/v1/vm.pause HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n",
                            std::chrono::seconds(2));
    CHECK(raw.rfind("HTTP/1.1 413 ", 0) == 0);
    CHECK(f.vmm.count() == 0);
}

TEST_CASE("a VMM that does not answer in time gives 503", "[api]") {
    ServerFixture f([](api::ApiServerOptions& o) { o.vmm_timeout = std::chrono::milliseconds(100); });
    f.vmm.delay_ms = 400;
    auto r = f.get("vm.info");
    CHECK(r.status == 503);
    CHECK(error_of(r).find("did not answer") != std::string::npos);
    f.vmm.delay_ms = 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the fake finish the late one
    CHECK(f.get("vmm.ping").status == 200);
}

TEST_CASE("chunked bodies are refused with 501", "[api]") {
    ServerFixture f;
    auto raw = raw_exchange(f.path,
                            "PUT /api/v1/vm.pause HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
    CHECK(statuses(raw) == std::vector<int>{501});
    CHECK(f.vmm.count() == 0);
}

TEST_CASE("Expect: 100-continue gets an interim response", "[api]") {
    ServerFixture f;
    UniqueFd fd = raw_connect(f.path);
    raw_send(fd.get(), "PUT /api/v1/vm.pause HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    auto interim = raw_read_all(fd.get(), std::chrono::milliseconds(300));
    CHECK(interim == "HTTP/1.1 100 Continue\r\n\r\n");
    raw_send(fd.get(), "{}");
    auto final_reply = raw_read_all(fd.get(), std::chrono::milliseconds(300));
    CHECK(final_reply.rfind("HTTP/1.1 204 ", 0) == 0);
}

TEST_CASE("ApiClient reports a missing socket clearly", "[api]") {
    TempDir dir;
    api::ApiClient client(dir.path() + "/none.sock");
    auto r = client.get("vmm.ping");
    REQUIRE_FALSE(r);
    CHECK(r.error().message() == "cannot connect to " + dir.path() + "/none.sock: No such file or directory");
}
