#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "api/routes.h"

using namespace vmm;
using namespace vmm::api;
using nlohmann::json;

namespace {

json body_of(const HttpReply& reply) {
    REQUIRE(reply.status == 200);
    json j = json::parse(reply.body, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    return j;
}

BalloonInfo sample_balloon(bool with_stats) {
    BalloonInfo b;
    b.kind = "virtio-balloon";
    b.target_bytes = 256ull << 20;
    b.actual_bytes = 64ull << 20;
    b.deflate_on_oom = true;
    b.stats_polling_interval_s = 2;
    if (with_stats) {
        BalloonStatistics s;
        s.values = {{"free_memory", 1000}, {"swap_in", 3}};
        s.updated_at = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
        b.statistics = s;
    }
    return b;
}

BalloonInfo sample_hyperalloc() {
    BalloonInfo b;
    b.kind = "hyperalloc";
    b.target_bytes = 512ull << 20;
    b.actual_bytes = 256ull << 20;
    HyperAllocInfo h;
    h.target_bytes = 512ull << 20;
    h.hard_reclaimed_bytes = 256ull << 20;
    h.soft_reclaimed_bytes = 64ull << 20;
    h.guest_free_bytes = 100ull << 20;
    h.installs = 7;
    h.install_requests = 9;
    h.install_errors = 2;
    h.installs_per_s = 3.5;
    h.auto_mode = true;
    h.auto_period_ms = 500;
    h.auto_limit_bytes = 32ull << 20;
    h.auto_reclaimed_bytes = 96ull << 20;
    h.discard_calls = 11;
    h.bad_records = 1;
    h.pagecache_shrink_pending = true;
    h.zones = {{"DMA32", 4096, 258048}, {"NORMAL", 262144, 65536}};
    h.host_rss_bytes = 300ull << 20;
    b.hyperalloc = h;
    return b;
}

}  // namespace

TEST_CASE("Empty renders 204 without a body", "[api][render]") {
    HttpReply r = render_reply(Empty{});
    CHECK(r.status == 204);
    CHECK(r.body.empty());
}

TEST_CASE("request errors map to their status with a JSON error", "[api][render]") {
    struct Case {
        RequestError::Kind kind;
        int status;
    };
    for (auto [kind, status] : {Case{RequestError::Kind::bad_request, 400}, Case{RequestError::Kind::not_found, 404},
                                Case{RequestError::Kind::wrong_state, 409}, Case{RequestError::Kind::internal, 500}}) {
        HttpReply r = render_reply(RequestError{kind, "why \"quoted\""});
        CHECK(r.status == status);
        json j = json::parse(r.body, nullptr, false);
        CHECK(j == json{{"error", "why \"quoted\""}});
    }
}

TEST_CASE("vmm.ping renders version, pid and features", "[api][render]") {
    json j = body_of(render_reply(PingInfo{"1.2.3", 42, {"kvm", "virtio-balloon"}}));
    CHECK(j["version"] == "1.2.3");
    CHECK(j["build_version"] == "1.2.3");
    CHECK(j["pid"] == 42);
    CHECK(j["features"] == json::array({"kvm", "virtio-balloon"}));
}

TEST_CASE("vm.info renders a cloud-hypervisor-like config", "[api][render]") {
    VmInfo info;
    info.config.cpus.boot = 2;
    info.config.memory.size = 1ull << 30;
    info.config.payload = {"/k/vmlinux", "console=ttyS0", std::string("/k/initrd")};
    info.config.disks.push_back({"/d.img", true, false, "disk0"});
    info.config.nets.push_back({"tap0", std::string("10.0.0.1"), std::string("255.255.255.0"), std::nullopt, "net0"});
    info.config.rng = RngConfig{};
    BalloonConfig balloon;
    balloon.model = BalloonModel::virtio;
    balloon.size = 256ull << 20;
    balloon.deflate_on_oom = true;
    balloon.stats_polling_interval_s = 2;
    info.config.balloon = balloon;
    info.config.serial = {ConsoleMode::file, "/tmp/serial.log"};
    info.config.payload.kernel += "\xff";  // invalid UTF-8 must not throw
    info.state = VmState::paused;
    info.memory_actual_size = (1ull << 30) - (64ull << 20);
    info.balloon = sample_balloon(true);
    json j = body_of(render_reply(info));
    CHECK(j["state"] == "Paused");
    CHECK(j["memory_actual_size"] == info.memory_actual_size);
    const json& c = j["config"];
    CHECK(c["cpus"]["boot_vcpus"] == 2);
    CHECK(c["memory"]["size"] == (1ull << 30));
    CHECK(c["memory"]["thp"] == true);
    CHECK(c["payload"]["cmdline"] == "console=ttyS0");
    CHECK(c["payload"]["initramfs"] == "/k/initrd");
    CHECK(c["disks"][0] == json{{"path", "/d.img"}, {"readonly", true}, {"direct", false}, {"id", "disk0"}});
    CHECK(c["net"][0]["tap"] == "tap0");
    CHECK(c["net"][0]["ip"] == "10.0.0.1");
    CHECK_FALSE(c["net"][0].contains("mac"));
    CHECK(c["rng"]["src"] == "/dev/urandom");
    CHECK(c["balloon"]["model"] == "virtio");
    CHECK(c["balloon"]["size"] == (256ull << 20));
    CHECK(c["balloon"]["deflate_on_oom"] == true);
    CHECK(c["balloon"]["stats_polling_interval_s"] == 2);
    CHECK_FALSE(c["balloon"].contains("auto_mode"));
    CHECK(c["serial"] == json{{"mode", "File"}, {"file", "/tmp/serial.log"}});
    CHECK(c["console"]["mode"] == "Off");
    const json& b = j["balloon"];
    CHECK(b["kind"] == "virtio-balloon");
    CHECK(b["target_bytes"] == (256ull << 20));
    CHECK(b["actual_bytes"] == (64ull << 20));
    CHECK(b["statistics"]["free_memory"] == 1000);
    CHECK(b["deflate_on_oom"] == true);
    CHECK_FALSE(b.contains("hyperalloc"));
}

TEST_CASE("vm.info without a balloon has no balloon sections", "[api][render]") {
    VmInfo info;
    json j = body_of(render_reply(info));
    CHECK(j["state"] == "Created");
    CHECK_FALSE(j.contains("balloon"));
    CHECK_FALSE(j["config"].contains("balloon"));
    CHECK_FALSE(j["config"]["payload"].contains("initramfs"));
    CHECK(j["config"]["disks"] == json::array());
}

TEST_CASE("vm.counters renders a map of device maps", "[api][render]") {
    DeviceCounters counters{{"net0", {{"rx_bytes", 10}, {"tx_bytes", 20}}}, {"disk0", {{"read_ops", 3}}}};
    json j = body_of(render_reply(counters));
    CHECK(j == json{{"net0", {{"rx_bytes", 10}, {"tx_bytes", 20}}}, {"disk0", {{"read_ops", 3}}}});
    CHECK(body_of(render_reply(DeviceCounters{})) == json::object());
}

TEST_CASE("vm.balloon-statistics uses Firecracker's names", "[api][render]") {
    json with = body_of(render_reply(sample_balloon(true)));
    CHECK(with == json{{"target_pages", 65536},
                       {"actual_pages", 16384},
                       {"target_mib", 256},
                       {"actual_mib", 64},
                       {"free_memory", 1000},
                       {"swap_in", 3},
                       {"statistics_updated_at", 1700000000}});
    json without = body_of(render_reply(sample_balloon(false)));
    CHECK(without.size() == 4);
    CHECK(without["actual_mib"] == 64);
}

TEST_CASE("a HyperAlloc balloon renders its block and config with snake_case names", "[api][render]") {
    VmInfo info;
    info.config.memory.size = 1ull << 30;
    BalloonConfig config;  // model=hyperalloc is the default
    config.size = 512ull << 20;
    config.auto_mode = true;
    config.auto_period_ms = 500;
    config.auto_limit_bytes = 32ull << 20;
    config.shrink_pagecache = false;
    config.install_path = InstallPath::worker;
    info.config.balloon = config;
    info.balloon = sample_hyperalloc();
    json j = body_of(render_reply(info));
    CHECK(j["config"]["balloon"] == json{{"model", "hyperalloc"},
                                         {"size", 512ull << 20},
                                         {"auto_mode", true},
                                         {"auto_period_ms", 500},
                                         {"auto_limit_bytes", 32ull << 20},
                                         {"shrink_pagecache", false},
                                         {"install_path", "worker"},
                                         {"auto_balloon", false}});
    const json& b = j["balloon"];
    CHECK(b["kind"] == "hyperalloc");
    CHECK(b["target_bytes"] == (512ull << 20));
    CHECK(b["actual_bytes"] == (256ull << 20));
    // The virtio-balloon's fields do not apply.
    CHECK_FALSE(b.contains("deflate_on_oom"));
    CHECK_FALSE(b.contains("statistics"));
    CHECK(b["hyperalloc"] == json{{"target_bytes", 512ull << 20},
                                  {"hard_reclaimed_bytes", 256ull << 20},
                                  {"soft_reclaimed_bytes", 64ull << 20},
                                  {"guest_free_bytes", 100ull << 20},
                                  {"page_cache_bytes", nullptr},
                                  {"installs", 7},
                                  {"install_requests", 9},
                                  {"install_errors", 2},
                                  {"installs_per_s", 3.5},
                                  {"auto_mode", true},
                                  {"auto_period_ms", 500},
                                  {"auto_limit_bytes", 32ull << 20},
                                  {"auto_paused", false},
                                  {"auto_reclaimed_bytes", 96ull << 20},
                                  {"discard_calls", 11},
                                  {"bad_records", 1},
                                  {"pagecache_shrink_pending", true},
                                  {"zones", json::array({{{"type", "DMA32"}, {"start_pfn", 4096}, {"pages", 258048}},
                                                         {{"type", "NORMAL"}, {"start_pfn", 262144}, {"pages", 65536}}})},
                                  {"host_rss_bytes", 300ull << 20}});
}

TEST_CASE("a HyperAlloc balloon with nothing known yet renders nulls and no zones", "[api][render]") {
    BalloonInfo b;
    b.kind = "hyperalloc";
    b.hyperalloc = HyperAllocInfo{};
    json j = body_of(render_reply(b));
    CHECK(j["actual_pages"] == 0);
    CHECK(j["hyperalloc"]["guest_free_bytes"].is_null());
    CHECK(j["hyperalloc"]["host_rss_bytes"].is_null());
    CHECK(j["hyperalloc"]["zones"] == json::array());
}

TEST_CASE("vm.balloon-statistics adds the HyperAlloc block after Firecracker's sizes", "[api][render]") {
    json j = body_of(render_reply(sample_hyperalloc()));
    CHECK(j["target_pages"] == 131072);
    CHECK(j["actual_pages"] == 65536);
    CHECK(j["target_mib"] == 512);
    CHECK(j["actual_mib"] == 256);
    CHECK(j["hyperalloc"]["soft_reclaimed_bytes"] == (64ull << 20));
    CHECK(j["hyperalloc"]["zones"].size() == 2);
    CHECK(j.size() == 5);
}

namespace {

AutoBalloonInfo sample_auto() {
    AutoBalloonInfo a;
    a.psi_path = "/proc/pressure/memory";
    a.psi_mode = "trigger";
    a.psi_mode_reason = "PSI trigger 'some 200000 2000000' registered";
    PsiInfo psi;
    psi.some_avg10 = 17.29;
    psi.some_avg60 = 4.5;
    psi.some_avg300 = 1.25;
    psi.some_total_us = 123456;
    psi.full_avg10 = 3.5;
    psi.full_avg60 = 1.0;
    psi.full_avg300 = 0.25;
    psi.full_total_us = 4567;
    a.last_psi = psi;
    a.last_decision = AutoBalloonDecisionInfo{"none", 256ull << 20, std::nullopt, "no pressure: hold", 75.5};
    a.last_action = AutoBalloonDecisionInfo{"inflate", 256ull << 20, std::nullopt,
                                            "host PSI some avg10 17.29% > 10%: inflate by 256 MiB to 256 MiB", 70.0};
    a.ticks = 16;
    a.psi_events = 2;
    a.inflates = 1;
    a.deflates = 3;
    a.cancels = 1;
    a.in_hysteresis_until_s = 125.0;
    a.in_hysteresis = true;
    a.host_pressure = true;
    a.alloc_stalls_per_s = 2.5;
    a.guest_available_bytes = 900ull << 20;
    a.tick_ms = 5000;
    a.hysteresis_ms = 60000;
    a.step_bytes = 256ull << 20;
    a.floor_bytes = 512ull << 20;
    return a;
}

}  // namespace

TEST_CASE("the auto-balloon block renders every decision field", "[api][render][auto]") {
    BalloonInfo b = sample_balloon(true);
    b.auto_balloon = sample_auto();
    VmInfo info;
    info.balloon = b;
    json a = body_of(render_reply(info))["balloon"]["auto_balloon"];
    CHECK(a["enabled"] == true);
    CHECK(a["psi_path"] == "/proc/pressure/memory");
    CHECK(a["psi_mode"] == "trigger");
    CHECK(a["psi_mode_reason"] == "PSI trigger 'some 200000 2000000' registered");
    CHECK(a["last_psi"] == json{{"some", {{"avg10", 17.29}, {"avg60", 4.5}, {"avg300", 1.25}, {"total_us", 123456}}},
                                {"full", {{"avg10", 3.5}, {"avg60", 1.0}, {"avg300", 0.25}, {"total_us", 4567}}}});
    CHECK(a["last_decision"] ==
          json{{"action", "none"}, {"target_bytes", 256ull << 20}, {"reason", "no pressure: hold"}, {"at_s", 75.5}});
    CHECK(a["last_action"]["action"] == "inflate");
    CHECK(a["last_action"]["at_s"] == 70.0);
    CHECK_FALSE(a["last_action"].contains("soft_reclaim"));  // virtio-balloon
    CHECK(a["ticks"] == 16);
    CHECK(a["psi_events"] == 2);
    CHECK(a["inflates"] == 1);
    CHECK(a["deflates"] == 3);
    CHECK(a["cancels"] == 1);
    CHECK(a["apply_errors"] == 0);
    CHECK(a["in_hysteresis"] == true);
    CHECK(a["in_hysteresis_until_s"] == 125.0);
    CHECK(a["host_pressure"] == true);
    CHECK(a["guest_pressure"] == false);
    CHECK(a["major_faults_per_s"].is_null());
    CHECK(a["alloc_stalls_per_s"] == 2.5);
    CHECK(a["installs_per_s"].is_null());
    CHECK(a["guest_available_bytes"] == (900ull << 20));
    CHECK(a["tick_ms"] == 5000);
    CHECK(a["hysteresis_ms"] == 60000);
    CHECK(a["step_bytes"] == (256ull << 20));
    CHECK(a["floor_bytes"] == (512ull << 20));
    CHECK_FALSE(a.contains("psi_error"));

    // vm.balloon-statistics carries the same block.
    json stats = body_of(render_reply(b));
    CHECK(stats["auto_balloon"] == a);
}

TEST_CASE("the auto-balloon block: disabled, no PSI, HyperAlloc soft reclaim", "[api][render][auto]") {
    VmInfo info;
    info.balloon = sample_balloon(false);
    CHECK(body_of(render_reply(info))["balloon"]["auto_balloon"] == json{{"enabled", false}});
    // vm.balloon-statistics keeps Firecracker's shape without auto=on.
    CHECK_FALSE(body_of(render_reply(sample_balloon(false))).contains("auto_balloon"));

    AutoBalloonInfo none;
    none.psi_mode = "unavailable";
    none.psi_mode_reason = "opening PSI file /proc/pressure/memory: No such file or directory";
    none.psi_error = "reading: Operation not supported";
    BalloonInfo b = sample_hyperalloc();
    b.auto_balloon = none;
    json a = body_of(render_reply(b))["auto_balloon"];
    CHECK(a["psi_mode"] == "unavailable");
    CHECK(a["last_psi"].is_null());
    CHECK(a["last_decision"].is_null());
    CHECK(a["in_hysteresis_until_s"].is_null());
    CHECK(a["psi_error"] == "reading: Operation not supported");

    struct Case {
        uint64_t bytes;
        const char* word;
    };
    for (Case c : {Case{0, "stopped"}, Case{UINT64_MAX, "unlimited"}, Case{64ull << 20, "limited"}}) {
        INFO(c.word);
        none.last_decision = AutoBalloonDecisionInfo{"none", 0, c.bytes, "r", 1.0};
        b.auto_balloon = none;
        json d = body_of(render_reply(b))["auto_balloon"]["last_decision"];
        CHECK(d["soft_reclaim"] == c.word);
        CHECK(d.contains("soft_reclaim_bytes") == (c.bytes == (64ull << 20)));
        if (d.contains("soft_reclaim_bytes")) CHECK(d["soft_reclaim_bytes"] == (64ull << 20));
    }
    // A sample without a full line (older kernels' CPU file) has no "full".
    PsiInfo some_only;
    some_only.some_avg10 = 1;
    none.last_psi = some_only;
    b.auto_balloon = none;
    CHECK_FALSE(body_of(render_reply(b))["auto_balloon"]["last_psi"].contains("full"));
}
