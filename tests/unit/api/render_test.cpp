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
    info.config.balloon = BalloonConfig{256ull << 20, true, false, 2};
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
    CHECK(c["balloon"]["size"] == (256ull << 20));
    CHECK(c["balloon"]["deflate_on_oom"] == true);
    CHECK(c["serial"] == json{{"mode", "File"}, {"file", "/tmp/serial.log"}});
    CHECK(c["console"]["mode"] == "Off");
    const json& b = j["balloon"];
    CHECK(b["kind"] == "virtio-balloon");
    CHECK(b["target_bytes"] == (256ull << 20));
    CHECK(b["actual_bytes"] == (64ull << 20));
    CHECK(b["statistics"]["free_memory"] == 1000);
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
