// Auto mode: each pass soft-reclaims every completely free child (at most the
// per-pass limit), discards it, leaves the guest's free counter alone, and is off
// unless the guest acknowledged AUTO_MODE.
#include <thread>

#include "hyperalloc_test_support.h"

using namespace vmm::balloon::hyperalloc;
using namespace vmm::balloon::hyperalloc::test;

namespace {

HyperAllocOptions auto_options(uint64_t limit = 0) {
    HyperAllocOptions o;
    o.auto_mode = true;
    o.auto_limit_bytes = limit;
    o.auto_period = std::chrono::milliseconds(10);
    return o;
}

struct AutoSetup {
    explicit AutoSetup(HyperAllocOptions o = auto_options(), uint64_t acked = kAllFeatures) : h(o) {
        // Children 3 and 10 hold one used frame each.
        zone = &add_default_zone(h, {3 * 512 + 100, 10 * 512});
        REQUIRE(h.mem.fill(GuestAddress(kZoneStart), 60 * kMiB, std::byte{0x5a}).has_value());
        REQUIRE(h.activate(acked).has_value());
        h.post_zones();
        initial_free = h.free_counter(*zone);
    }
    Harness h;
    GuestZone* zone = nullptr;
    int64_t initial_free = 0;
};

}  // namespace

TEST_CASE("an auto pass soft-reclaims exactly the completely free children", "[hyperalloc][auto]") {
    AutoSetup s;
    s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("soft_frames") == 28);
    CHECK(s.h.counter("auto_reclaimed_frames") == 28);
    CHECK(s.h.dev->stats().auto_reclaimed_bytes == 28 * kFrame);
    CHECK(s.h.dev->stats().soft_reclaimed_bytes == 28 * kFrame);
    // Soft reclaim leaves the frames free: the guest's counters do not move.
    CHECK(s.h.free_counter(*s.zone) == s.initial_free);
    CHECK(llf_free_frames(&s.zone->l) == static_cast<uint64_t>(s.initial_free));
    for (uint64_t c = 0; c < 30; ++c) {
        INFO("child " << c);
        uint16_t e = s.h.child_entry(*s.zone, c);
        uint64_t gpa = Harness::child_gpa(*s.zone, c);
        if (c == 3 || c == 10) {
            CHECK_FALSE(llf_child_reclaimed(e));
            CHECK(memory_is(s.h.mem, gpa, kFrame, 0x5a));
        } else {
            CHECK(e == llf_child_make(512, false, true));
            CHECK(resident_pages(s.h.mem, gpa, kFrame) == 0);
        }
    }
    // Nothing new on a second pass.
    uint64_t calls = s.h.counter("discard_calls");
    s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("auto_reclaimed_frames") == 28);
    CHECK(s.h.counter("discard_calls") == calls);
    CHECK(llf_check(&s.zone->l) == 0);
}

TEST_CASE("an auto pass reclaims at most the limit", "[hyperalloc][auto]") {
    AutoSetup s(auto_options(4 * kMiB));
    s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("soft_frames") == 2);
    s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("soft_frames") == 4);
    for (int i = 0; i < 20; ++i) s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("soft_frames") == 28);
}

TEST_CASE("auto mode stays off unless offered and acknowledged", "[hyperalloc][auto]") {
    SECTION("the guest did not acknowledge AUTO_MODE") {
        AutoSetup s(auto_options(), kAllFeatures & ~kFeatureAutoMode);
        s.h.dev->run_auto_pass_for_test();
        CHECK(s.h.counter("soft_frames") == 0);
        CHECK(s.h.counter("discard_calls") == 0);
    }
    SECTION("the host did not offer it") {
        HyperAllocOptions o = auto_options();
        o.auto_mode = false;
        AutoSetup s(o);
        CHECK((s.h.dev->device_features() & kFeatureAutoMode) == 0);
        s.h.dev->run_auto_pass_for_test();
        CHECK(s.h.counter("soft_frames") == 0);
    }
}

TEST_CASE("the period timer runs the auto pass", "[hyperalloc][auto]") {
    AutoSetup s;
    std::vector<int> fds = s.h.dev->backend_fds();
    REQUIRE(fds.size() == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    s.h.dev->process_backend(fds[0], 1);
    CHECK(s.h.counter("soft_frames") == 28);
}

TEST_CASE("a soft-reclaimed frame the guest allocates is installed", "[hyperalloc][auto]") {
    AutoSetup s;
    s.h.dev->run_auto_pass_for_test();
    llf_result r{};
    REQUIRE(llf_get(&s.zone->l, 0, 0, &r) == LLF_OK);
    uint64_t child = r.frame / 512;
    if (child == 3 || child == 10) {
        // The hint started in a used child; take a frame of a free one.
        REQUIRE(llf_get(&s.zone->l, 0, 9, &r) == LLF_OK);
        child = r.frame / 512;
    }
    REQUIRE(r.reclaimed_mask == 1);
    CHECK(s.h.install(r.frame) == HA_INSTALL_OK);
    CHECK(s.h.counter("soft_frames") == 27);
    CHECK(s.h.counter("installs") == 1);
    CHECK(resident_pages(s.h.mem, Harness::child_gpa(*s.zone, child), kFrame) == 512);
    // A second request for the same child (another vCPU raced) is just OK.
    CHECK(s.h.install(r.frame) == HA_INSTALL_OK);
    CHECK(s.h.counter("installs") == 1);
}

TEST_CASE("hard reclaim takes soft frames first, without discarding again", "[hyperalloc][auto]") {
    AutoSetup s;
    s.h.dev->run_auto_pass_for_test();
    uint64_t calls = s.h.counter("discard_calls");
    REQUIRE(s.h.dev->set_target(20 * kMiB).has_value());
    CHECK(s.h.counter("hard_frames") == 10);
    CHECK(s.h.counter("soft_frames") == 18);
    CHECK(s.h.counter("discard_calls") == calls);
    CHECK(s.h.free_counter(*s.zone) == s.initial_free - 10 * 512);
}

TEST_CASE("the auto limit can be changed at run time", "[hyperalloc][auto]") {
    AutoSetup s;  // started without a limit
    CHECK(s.h.dev->stats().auto_limit_bytes == 0);
    REQUIRE(s.h.dev->set_auto_limit(2 * kFrame).has_value());
    CHECK(s.h.dev->stats().auto_limit_bytes == 2 * kFrame);
    s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("soft_frames") == 2);
    s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("soft_frames") == 4);
    // Back to no limit: the next pass takes every remaining free child.
    REQUIRE(s.h.dev->set_auto_limit(0).has_value());
    s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("soft_frames") == 28);
    CHECK(s.h.dev->options().auto_limit_bytes == 0);  // the configured value is kept
}

TEST_CASE("an auto limit that is not whole frames is refused and changes nothing", "[hyperalloc][auto]") {
    AutoSetup s(auto_options(4 * kMiB));
    auto r = s.h.dev->set_auto_limit(3 * kMiB);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message().find("multiple of 2 MiB") != std::string::npos);
    CHECK(s.h.dev->stats().auto_limit_bytes == 4 * kMiB);
    s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("soft_frames") == 2);
}

TEST_CASE("paused auto mode soft-reclaims nothing until resumed", "[hyperalloc][auto]") {
    AutoSetup s;
    s.h.dev->pause_auto(true);
    CHECK(s.h.dev->stats().auto_paused);
    for (int i = 0; i < 3; ++i) s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("soft_frames") == 0);
    CHECK(s.h.counter("discard_calls") == 0);
    // The period timer honours the pause too.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    s.h.dev->process_backend(s.h.dev->backend_fds().at(0), 0);
    CHECK(s.h.counter("soft_frames") == 0);
    s.h.dev->pause_auto(false);
    CHECK_FALSE(s.h.dev->stats().auto_paused);
    s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("soft_frames") == 28);
}
