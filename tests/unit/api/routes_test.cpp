#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "api/routes.h"

using namespace vmm;
using namespace vmm::api;

namespace {

HttpRequest make(std::string method, std::string path, std::string body = "") {
    HttpRequest r;
    r.method = std::move(method);
    r.path = "/api/v1/" + std::move(path);
    r.body = std::move(body);
    return r;
}

// The reply the router gave at once; fails the test if it produced a VmRequest.
HttpReply immediate(const RouteResult& result) {
    const auto* reply = std::get_if<HttpReply>(&result);
    REQUIRE(reply);
    return *reply;
}

VmRequest forwarded(const RouteResult& result) {
    const auto* reply = std::get_if<HttpReply>(&result);
    if (reply) FAIL("router answered " << reply->status << ": " << reply->body);
    return std::get<VmRequest>(result);
}

uint64_t balloon_bytes(const RouteResult& result) {
    VmRequest r = forwarded(result);
    const auto* resize = std::get_if<request::ResizeBalloon>(&r);
    REQUIRE(resize);
    return resize->bytes;
}

std::string error_of(const HttpReply& reply) {
    auto j = nlohmann::json::parse(reply.body, nullptr, false);
    REQUIRE(j.is_object());
    REQUIRE(j.size() == 1);
    REQUIRE(j["error"].is_string());
    return j["error"].get<std::string>();
}

}  // namespace

TEST_CASE("every endpoint maps to its request", "[api][routes]") {
    CHECK(std::holds_alternative<request::Ping>(forwarded(route_request(make("GET", "vmm.ping")))));
    CHECK(std::holds_alternative<request::ShutdownVmm>(forwarded(route_request(make("PUT", "vmm.shutdown")))));
    CHECK(std::holds_alternative<request::GetInfo>(forwarded(route_request(make("GET", "vm.info")))));
    CHECK(std::holds_alternative<request::GetCounters>(forwarded(route_request(make("GET", "vm.counters")))));
    CHECK(std::holds_alternative<request::Pause>(forwarded(route_request(make("PUT", "vm.pause")))));
    CHECK(std::holds_alternative<request::Resume>(forwarded(route_request(make("PUT", "vm.resume")))));
    CHECK(std::holds_alternative<request::ShutdownVm>(forwarded(route_request(make("PUT", "vm.shutdown")))));
    CHECK(std::holds_alternative<request::Reboot>(forwarded(route_request(make("PUT", "vm.reboot")))));
    CHECK(std::holds_alternative<request::PowerButton>(forwarded(route_request(make("PUT", "vm.power-button")))));
    CHECK(std::holds_alternative<request::GetBalloonStatistics>(
        forwarded(route_request(make("GET", "vm.balloon-statistics")))));
}

TEST_CASE("wrong method is 405 with Allow; unknown path is 404", "[api][routes]") {
    HttpReply r = immediate(route_request(make("PUT", "vm.info")));
    CHECK(r.status == 405);
    REQUIRE(r.extra_headers.size() == 1);
    CHECK(r.extra_headers[0] == std::pair<std::string, std::string>{"Allow", "GET"});
    HttpReply p = immediate(route_request(make("GET", "vm.pause")));
    CHECK(p.status == 405);
    CHECK(p.extra_headers[0].second == "PUT");
    CHECK(immediate(route_request(make("DELETE", "vm.pause"))).status == 405);
    CHECK(immediate(route_request(make("GET", "vm.nothing"))).status == 404);
    CHECK(immediate(route_request(make("GET", "vm.info/extra"))).status == 404);
    HttpRequest outside;
    outside.method = "GET";
    outside.path = "/vm.info";
    CHECK(immediate(route_request(outside)).status == 404);
    CHECK_FALSE(error_of(immediate(route_request(outside))).empty());
}

TEST_CASE("endpoints without a body accept empty or {} and refuse anything else", "[api][routes]") {
    CHECK(std::holds_alternative<request::Pause>(forwarded(route_request(make("PUT", "vm.pause", "{}")))));
    CHECK(std::holds_alternative<request::Pause>(forwarded(route_request(make("PUT", "vm.pause", " \r\n")))));
    CHECK(immediate(route_request(make("PUT", "vm.pause", R"({"a":1})"))).status == 400);
    CHECK(immediate(route_request(make("PUT", "vm.pause", "[]"))).status == 400);
    CHECK(immediate(route_request(make("PUT", "vm.pause", "{"))).status == 400);
}

TEST_CASE("vm.resize-balloon takes bytes or a size string", "[api][routes]") {
    CHECK(balloon_bytes(route_request(make("PUT", "vm.resize-balloon", R"({"size": 1073741824})"))) == (1ull << 30));
    CHECK(balloon_bytes(route_request(make("PUT", "vm.resize-balloon", R"({"size": "512M"})"))) == (512ull << 20));
    CHECK(balloon_bytes(route_request(make("PUT", "vm.resize-balloon", R"({"size": "8K"})"))) == 8192);
    CHECK(balloon_bytes(route_request(make("PUT", "vm.resize-balloon", R"({"size": "2G"})"))) == (2ull << 30));
    CHECK(balloon_bytes(route_request(make("PUT", "vm.resize-balloon", R"({"size": "4096"})"))) == 4096);
    CHECK(balloon_bytes(route_request(make("PUT", "vm.resize-balloon", R"({"size": 0})"))) == 0);
    // Only the VMM thread knows the balloon's model: a 4 KiB multiple that a HyperAlloc
    // balloon refuses (it needs 2 MiB) is still forwarded, for either endpoint.
    CHECK(balloon_bytes(route_request(make("PUT", "vm.resize-balloon", R"({"size": "1M"})"))) == (1ull << 20));
    CHECK(balloon_bytes(route_request(make("PUT", "vm.resize", R"({"desired_balloon": 12288})"))) == 12288);
}

TEST_CASE("vm.resize-balloon refuses bad bodies with 400 before the VMM", "[api][routes]") {
    const char* bad[] = {
        R"({"size": -4096})",          R"({"size": 4097})",           R"({"size": 1.5})",
        R"({"size": 4096.0})",         R"({"size": "12X"})",          R"({"size": "M"})",
        R"({"size": "-1M"})",          R"({"size": "1Q"})",           R"({"size": "99999999999G"})",
        R"({"size": null})",           R"({"size": true})",           R"({"size": [4096]})",
        R"({"size": 4096, "x": 1})",   R"({})",                       R"([4096])",
        R"("4096")",                   R"({"size": 4096)",            "",
        R"({"size": 1e30})",           R"({"size": 18446744073709551616})",
    };
    for (const char* body : bad) {
        INFO(body);
        HttpReply r = immediate(route_request(make("PUT", "vm.resize-balloon", body)));
        CHECK(r.status == 400);
        CHECK_FALSE(error_of(r).empty());
    }
    HttpReply unaligned = immediate(route_request(make("PUT", "vm.resize-balloon", R"({"size": 4097})")));
    CHECK(error_of(unaligned).find("4096") != std::string::npos);
}

TEST_CASE("vm.resize takes desired_balloon only", "[api][routes]") {
    CHECK(balloon_bytes(route_request(make("PUT", "vm.resize", R"({"desired_balloon": 268435456})"))) ==
          (256ull << 20));
    HttpReply vcpus = immediate(route_request(make("PUT", "vm.resize", R"({"desired_vcpus": 2})")));
    CHECK(vcpus.status == 400);
    CHECK(error_of(vcpus).find("not supported") != std::string::npos);
    CHECK(immediate(route_request(make("PUT", "vm.resize", R"({"desired_ram": 1073741824})"))).status == 400);
    CHECK(immediate(route_request(make("PUT", "vm.resize", R"({"desired_balloon": "512M"})"))).status == 400);
    CHECK(immediate(route_request(make("PUT", "vm.resize", R"({"desired_balloon": -1})"))).status == 400);
    CHECK(immediate(route_request(make("PUT", "vm.resize", R"({"desired_balloon": 100})"))).status == 400);
    CHECK(immediate(route_request(make("PUT", "vm.resize", R"({"bogus": 1})"))).status == 400);
    CHECK(immediate(route_request(make("PUT", "vm.resize", "{}"))).status == 400);
}

// The same grammar as the command line (common/size.h): "512m" means the same
// over the API as on the command line.
TEST_CASE("parse_size understands K, M, G and T as powers of two, in either case", "[api][routes]") {
    CHECK(*parse_size("1") == 1);
    CHECK(*parse_size("1K") == 1024);
    CHECK(*parse_size("3M") == 3ull << 20);
    CHECK(*parse_size("3m") == 3ull << 20);
    CHECK(*parse_size("16G") == 16ull << 30);
    CHECK(*parse_size("1T") == 1ull << 40);
    CHECK_FALSE(parse_size(""));
    CHECK_FALSE(parse_size("K"));
    CHECK_FALSE(parse_size("1KB"));
    CHECK_FALSE(parse_size(" 1M"));
    CHECK_FALSE(parse_size("17179869184G"));  // overflows 64 bits
}

TEST_CASE("vm.add-device takes cloud-hypervisor's body", "[api][routes][vfio]") {
    VmRequest r = forwarded(route_request(make("PUT", "vm.add-device", R"({"path": "/sys/bus/pci/devices/0000:01:00.0/"})")));
    const auto* add = std::get_if<request::AddDevice>(&r);
    REQUIRE(add);
    CHECK(add->device.path == "/sys/bus/pci/devices/0000:01:00.0/");
    CHECK(add->device.id.empty());
    r = forwarded(route_request(make("PUT", "vm.add-device", R"({"path": "0000:01:00.0", "id": "gpu"})")));
    CHECK(std::get<request::AddDevice>(r).device.id == "gpu");
    for (const char* body : {"{}", R"({"id": "x"})", R"({"path": 7})", R"({"path": ""})", R"({"path": "a", "iommu": true})",
                             R"({"path": "a", "colour": 1})", "[]"}) {
        INFO(body);
        CHECK(immediate(route_request(make("PUT", "vm.add-device", body))).status == 400);
    }
    CHECK(immediate(route_request(make("PUT", "vm.add-device"))).status == 400);
    CHECK(immediate(route_request(make("GET", "vm.add-device"))).status == 405);
}

TEST_CASE("vm.remove-device takes an id", "[api][routes][vfio]") {
    VmRequest r = forwarded(route_request(make("PUT", "vm.remove-device", R"({"id": "vfio0"})")));
    REQUIRE(std::get_if<request::RemoveDevice>(&r));
    CHECK(std::get<request::RemoveDevice>(r).id == "vfio0");
    for (const char* body : {"{}", R"({"id": 0})", R"({"id": ""})", R"({"id": "a", "path": "b"})"}) {
        INFO(body);
        CHECK(immediate(route_request(make("PUT", "vm.remove-device", body))).status == 400);
    }
}
