// The DMA invariant with a VFIO function (simulated kernel VFIO that pins, i.e.
// populates, what it maps) while the test guest's HyperAlloc workload allocates,
// fills, verifies and frees memory and installs frames on its vCPU, and the host
// reclaims and returns frames through balloon resizes at the same time. At every
// pause, for each 2 MiB frame of guest RAM: mapped for DMA <=> fully backed. A
// frame discarded while still mapped (reclaim before unmap) is mapped but not
// resident; a frame the guest uses without the install having mapped it is
// resident but not mapped.
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <random>

#include "guest_run.h"
#include "sim_vfio.h"
#include "vmm/request_channel.h"

using namespace vmm;
using namespace vmm::test;
namespace sim = vmm::vfio::sim;

namespace {

constexpr uint64_t kFrame = 2ull << 20;

bool mapped(const sim::SimVfio& host, uint64_t gpa) {
    std::lock_guard lock(host.dma_mutex);
    for (const auto& [fd, c] : host.containers) {
        auto it = c.mappings.upper_bound(gpa);
        if (it == c.mappings.begin()) continue;
        --it;
        if (gpa >= it->first && gpa + kFrame <= it->first + it->second.size) return true;
    }
    return false;
}

bool resident(uint64_t host) {
    std::vector<unsigned char> pages(kFrame / 4096);
    REQUIRE(::mincore(reinterpret_cast<void*>(host), kFrame, pages.data()) == 0);
    for (unsigned char p : pages)
        if (!(p & 1)) return false;
    return true;
}

// Frames that break the invariant, as "gpa:mapped/resident" strings.
std::vector<std::string> violations(const sim::SimVfio& host, const memory::GuestMemory& mem, uint64_t& reclaimed) {
    std::vector<std::string> bad;
    reclaimed = 0;
    for (const auto& region : mem.regions()) {
        for (uint64_t off = 0; off + kFrame <= region.size(); off += kFrame) {
            uint64_t gpa = region.start().raw + off;
            bool m = mapped(host, gpa), r = resident(region.host_address_for_kvm() + off);
            if (!m && !r) ++reclaimed;
            if (m != r) bad.push_back(fmt::format("{:#x}:{}/{}", gpa, m ? "mapped" : "unmapped", r ? "resident" : "discarded"));
        }
    }
    return bad;
}

}  // namespace

TEST_CASE("DMA invariant: reclaim and install race with a VFIO function present", "[kvm][vfio][hyperalloc]") {
    auto host = std::make_shared<sim::SimVfio>();
    host->populate_on_map = true;
    host->add_function("0000:01:00.0", 7);
    GuestRun run(
        "hyperalloc", 1, 512,
        [](VmConfig& c) {
            c.payload.cmdline += " testguest.seconds=10";
            c.balloon = BalloonConfig{};  // HyperAlloc, manual target; installs on the vCPU
            c.devices.push_back({"0000:01:00.0", "nic"});
        },
        VmServices{host});
    auto channel = RequestChannel::create();
    REQUIRE(channel);
    run.vm().attach_requests(*channel);
    run.start();
    REQUIRE(run.wait_output("HA: ready", 60s));

    std::mt19937_64 rng(42);
    unsigned checks = 0, resizes = 0;
    uint64_t max_reclaimed = 0;
    BalloonInfo last;  // the statistics at the latest check (the VM ends with the workload)
    auto deadline = std::chrono::steady_clock::now() + 7s;
    while (std::chrono::steady_clock::now() < deadline) {
        for (int i = 0; i < 5; ++i) {
            uint64_t target = (rng() % 129) * kFrame;  // 0 .. 256 MiB
            auto reply = (*channel)->call(request::ResizeBalloon{target});
            REQUIRE(reply);
            if (std::get_if<RequestError>(&*reply)) FAIL(std::get<RequestError>(*reply).message);
            ++resizes;
            std::this_thread::sleep_for(20ms);
        }
        REQUIRE(std::get_if<Empty>(&*(*channel)->call(request::Pause{})));
        uint64_t reclaimed = 0;
        auto bad = violations(*host, run.vm().memory(), reclaimed);
        max_reclaimed = std::max(max_reclaimed, reclaimed);
        INFO("check " << checks << ": " << bad.size() << " frames break mapped <=> backed, e.g. "
                      << (bad.empty() ? std::string("-") : bad.front()));
        REQUIRE(bad.empty());
        ++checks;
        auto stats = (*channel)->call(request::GetBalloonStatistics{});
        REQUIRE(stats);
        REQUIRE(std::get_if<BalloonInfo>(&*stats));
        last = std::get<BalloonInfo>(*stats);
        REQUIRE(std::get_if<Empty>(&*(*channel)->call(request::Resume{})));
    }
    REQUIRE(run.wait_output("TESTGUEST: done", 60s));
    CHECK_THAT(run.output(), Catch::Contains("HA: done mismatches=0"));
    const BalloonInfo* info = &last;
    REQUIRE(info->hyperalloc);
    INFO("resizes " << resizes << ", checks " << checks << ", installs " << info->hyperalloc->installs
                    << ", most frames reclaimed at a check " << max_reclaimed);
    CHECK(checks >= 5);
    CHECK(max_reclaimed > 0);                // the host did take frames away
    CHECK(info->hyperalloc->installs > 0);   // and the guest took some back
    CHECK(info->hyperalloc->install_errors == 0);
}
