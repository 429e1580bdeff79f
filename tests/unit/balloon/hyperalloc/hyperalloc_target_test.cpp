// The manual target: shrink by hard reclaim (free counter, guest allocations,
// discards merged into runs), grow by return (frames come back reclaimed and are
// installed on first use), zone priority, and the page-cache shortfall protocol.
#include <thread>

#include "hyperalloc_test_support.h"

using namespace vmm::balloon::hyperalloc;
using namespace vmm::balloon::hyperalloc::test;

namespace {

// The default zone with one frame taken in children 3 and 10: 28 free children.
struct ShrinkSetup {
    explicit ShrinkSetup(HyperAllocOptions options = {}, uint64_t acked = kAllFeatures) : h(options) {
        zone = &add_default_zone(h, {3 * 512, 10 * 512 + 7});
        REQUIRE(h.activate(acked).has_value());
        h.post_zones();
        REQUIRE(h.counter("zones") == 1);
        initial_free = h.free_counter(*zone);
    }
    Harness h;
    GuestZone* zone = nullptr;
    int64_t initial_free = 0;
};

// Allocates huge frames (order 9) as the guest until it runs out; returns them.
std::vector<llf_result> take_all_huge(GuestZone& z) {
    std::vector<llf_result> got;
    llf_result r{};
    while (llf_get(&z.l, 0, 9, &r) == LLF_OK) got.push_back(r);
    return got;
}

}  // namespace

TEST_CASE("shrink hard-reclaims frames the guest then cannot allocate", "[hyperalloc][target]") {
    ShrinkSetup s;
    REQUIRE(s.initial_free == 15360 - 2);
    LogCapture log;
    REQUIRE(s.h.dev->set_target(16 * kMiB).has_value());

    CHECK(s.h.counter("hard_frames") == 8);
    CHECK(s.h.free_counter(*s.zone) == s.initial_free - 8 * 512);
    CHECK(llf_free_frames(&s.zone->l) == static_cast<uint64_t>(s.initial_free) - 8 * 512);
    CHECK(log.contains("hyperalloc: balloon at 16 MiB of 16 MiB target (8 frames hard-reclaimed in "));
    HyperAllocStats st = s.h.dev->stats();
    CHECK(st.target_bytes == 16 * kMiB);
    CHECK(st.hard_reclaimed_bytes == 16 * kMiB);
    CHECK(st.guest_free_bytes == static_cast<uint64_t>(s.initial_free - 8 * 512) * 4096);

    // The guest gets the other 20 free children, none of them reclaimed...
    std::vector<llf_result> huge = take_all_huge(*s.zone);
    CHECK(huge.size() == 20);
    for (const llf_result& r : huge) CHECK(r.reclaimed_mask == 0);
    // ...and the rest of the two used children, and nothing else.
    llf_result r{};
    int small = 0;
    while (llf_get(&s.zone->l, 0, 0, &r) == LLF_OK) {
        CHECK((r.frame / 512 == 3 || r.frame / 512 == 10));
        ++small;
    }
    CHECK(small == 2 * 511);
    CHECK(llf_check(&s.zone->l) == 0);
}

TEST_CASE("hard-reclaimed memory is discarded, used memory is kept", "[hyperalloc][target]") {
    ShrinkSetup s;
    REQUIRE(s.h.mem.fill(GuestAddress(kZoneStart), 60 * kMiB, std::byte{0xab}).has_value());
    REQUIRE(s.h.dev->set_target(56 * kMiB).has_value());  // every free child
    REQUIRE(s.h.counter("hard_frames") == 28);
    for (uint64_t c = 0; c < 30; ++c) {
        INFO("child " << c);
        uint64_t gpa = Harness::child_gpa(*s.zone, c);
        if (c == 3 || c == 10) {
            CHECK(memory_is(s.h.mem, gpa, kFrame, 0xab));
        } else {
            CHECK(resident_pages(s.h.mem, gpa, kFrame) == 0);
            CHECK(memory_is(s.h.mem, gpa, kFrame, 0x00));
        }
    }
}

TEST_CASE("adjacent frames are discarded as one range", "[hyperalloc][target]") {
    SECTION("runs between used frames") {
        ShrinkSetup s;
        REQUIRE(s.h.dev->set_target(56 * kMiB).has_value());
        // Children 0-2, 4-9 and 11-29.
        CHECK(s.h.counter("discard_calls") == 3);
        CHECK(s.h.dev->stats().discard_calls == 3);
    }
    SECTION("a run is split where one RAM region ends and the next begins") {
        Harness h({}, {{GuestAddress(0), 32 * kMiB}, {GuestAddress(32 * kMiB), 32 * kMiB}});
        add_default_zone(h);
        REQUIRE(h.activate().has_value());
        h.post_zones();
        REQUIRE(h.dev->set_target(60 * kMiB).has_value());
        CHECK(h.counter("hard_frames") == 30);
        CHECK(h.counter("discard_calls") == 2);
    }
}

TEST_CASE("frames in a RAM hole are never reclaimed", "[hyperalloc][target]") {
    // [32, 40) MiB is a hole the (hostile) guest reports as free memory.
    Harness h({}, {{GuestAddress(0), 32 * kMiB}, {GuestAddress(40 * kMiB), 24 * kMiB}});
    GuestZone& z = add_default_zone(h);
    REQUIRE(h.activate(kAllFeatures & ~kFeatureShrinkPagecache).has_value());
    h.post_zones();
    REQUIRE(h.counter("zones") == 1);
    LogCapture log;
    // 56 MiB of RAM: the most the target may be is 54 MiB (27 frames).
    REQUIRE(h.dev->set_target(54 * kMiB).has_value());
    CHECK(h.counter("hard_frames") == 26);
    CHECK(h.counter("discard_calls") == 2);
    for (uint64_t c = 14; c < 18; ++c) CHECK(h.child_entry(z, c) == LLF_CHILD_FRAMES);
    CHECK(log.contains("balloon at 52 MiB of 54 MiB target (26 frames hard-reclaimed in"));
    CHECK(log.contains("; short by 2 MiB)"));
    CHECK_FALSE(log.contains("ERROR"));
}

TEST_CASE("grow returns frames reclaimed; the guest installs them on use", "[hyperalloc][target]") {
    ShrinkSetup s;
    REQUIRE(s.h.dev->set_target(16 * kMiB).has_value());
    LogCapture log;
    REQUIRE(s.h.dev->set_target(0).has_value());
    CHECK(s.h.counter("hard_frames") == 0);
    CHECK(s.h.counter("soft_frames") == 8);
    CHECK(s.h.free_counter(*s.zone) == s.initial_free);
    CHECK(llf_free_frames(&s.zone->l) == static_cast<uint64_t>(s.initial_free));
    CHECK(log.contains("hyperalloc: balloon at 0 MiB of 0 MiB target (8 frames returned in "));

    std::vector<llf_result> huge = take_all_huge(*s.zone);
    REQUIRE(huge.size() == 28);
    int reclaimed = 0;
    for (const llf_result& r : huge) {
        if (r.reclaimed_mask == 0) continue;
        ++reclaimed;
        uint64_t child = r.frame / 512;
        uint64_t gpa = Harness::child_gpa(*s.zone, child);
        CHECK(resident_pages(s.h.mem, gpa, kFrame) == 0);
        // Any frame of the child names it; the host aligns down.
        CHECK(s.h.install(r.frame + 77) == HA_INSTALL_OK);
        CHECK_FALSE(llf_child_reclaimed(s.h.child_entry(*s.zone, child)));
        CHECK(resident_pages(s.h.mem, gpa, kFrame) == 512);
    }
    CHECK(reclaimed == 8);
    CHECK(s.h.counter("soft_frames") == 0);
    CHECK(s.h.counter("installs") == 8);
    CHECK(s.h.dev->stats().install_requests == 8);
}

TEST_CASE("shrink takes NORMAL, then MOVABLE, then DMA32; grow returns in reverse",
          "[hyperalloc][target]") {
    Harness h;
    GuestZone& dma = h.add_zone(HA_ZONE_DMA32, kZoneStart / 4096, 20 * kMiB / 4096);
    GuestZone& normal = h.add_zone(HA_ZONE_NORMAL, 24 * kMiB / 4096, 20 * kMiB / 4096);
    GuestZone& movable = h.add_zone(HA_ZONE_MOVABLE, 44 * kMiB / 4096, 20 * kMiB / 4096);
    REQUIRE(h.activate().has_value());
    h.post_zones();
    REQUIRE(h.counter("zones") == 3);
    int64_t full = 20 * kMiB / 4096;

    REQUIRE(h.dev->set_target(24 * kMiB).has_value());
    CHECK(h.free_counter(normal) == full - 10 * 512);
    CHECK(h.free_counter(movable) == full - 2 * 512);
    CHECK(h.free_counter(dma) == full);
    REQUIRE(h.dev->set_target(44 * kMiB).has_value());
    CHECK(h.free_counter(dma) == full - 2 * 512);

    REQUIRE(h.dev->set_target(4 * kMiB).has_value());
    CHECK(h.counter("hard_frames") == 2);
    CHECK(h.free_counter(dma) == full);
    CHECK(h.free_counter(movable) == full);
    CHECK(h.free_counter(normal) == full - 2 * 512);
}

TEST_CASE("a target set before the zones are known is applied when they arrive",
          "[hyperalloc][target]") {
    HyperAllocOptions options;
    options.target_bytes = 8 * kMiB;
    Harness h(options);
    add_default_zone(h);
    CHECK(h.dev->target_bytes() == 8 * kMiB);
    REQUIRE(h.dev->set_target(12 * kMiB).has_value());  // not active yet: stored
    REQUIRE(h.activate().has_value());
    CHECK(h.counter("hard_frames") == 0);
    h.post_zones();
    CHECK(h.counter("hard_frames") == 6);
    CHECK(h.counter("target_frames") == 6);
}

TEST_CASE("targets and options are validated", "[hyperalloc][target]") {
    Harness h;
    auto unaligned = h.dev->set_target(3 * kMiB);
    REQUIRE_FALSE(unaligned.has_value());
    CHECK_THAT(unaligned.error().message(), Catch::Contains("not a multiple of 2 MiB"));
    auto too_big = h.dev->set_target(64 * kMiB);
    REQUIRE_FALSE(too_big.has_value());
    CHECK_THAT(too_big.error().message(), Catch::Contains("not below guest RAM"));
    CHECK(h.dev->target_bytes() == 0);

    auto create = [](HyperAllocOptions o) { return HyperAllocDevice::create(o, 64 * kMiB); };
    HyperAllocOptions o;
    o.target_bytes = kMiB;
    CHECK_FALSE(create(o).has_value());
    o = {};
    o.auto_period = std::chrono::milliseconds(5);
    CHECK_FALSE(create(o).has_value());
    o = {};
    o.vcpus = 0;
    CHECK_FALSE(create(o).has_value());
    o.vcpus = LLF_MAX_CPUS + 1;
    CHECK_FALSE(create(o).has_value());
    o = {};
    o.auto_limit_bytes = 3 * kMiB;
    CHECK_FALSE(create(o).has_value());
    o = {};
    o.target_bytes = 62 * kMiB;
    CHECK(create(o).has_value());
}

TEST_CASE("a shortfall asks the guest to drop page cache and retries", "[hyperalloc][target]") {
    HyperAllocOptions options;
    options.auto_period = std::chrono::milliseconds(10);
    Harness h(options);
    GuestZone& z = add_default_zone(h);
    REQUIRE(h.activate().has_value());
    h.post_zones();
    // The guest uses all but 4 children (e.g. for its page cache).
    std::vector<llf_result> used;
    for (int i = 0; i < 26; ++i) {
        llf_result r{};
        REQUIRE(llf_get(&z.l, 0, 9, &r) == LLF_OK);
        used.push_back(r);
    }
    LogCapture log;
    REQUIRE(h.dev->set_target(16 * kMiB).has_value());
    CHECK(h.counter("hard_frames") == 4);
    CHECK(h.config_shrink_pagecache() == 4 * 512);
    CHECK(h.irq->config_changes == 1);
    CHECK(h.dev->stats().pagecache_shrink_pending);
    CHECK(log.contains("(4 frames hard-reclaimed in "));
    CHECK(log.contains("short by 8 MiB, asked the guest to drop page cache)"));

    SECTION("the guest's notification retries") {
        // It drops only part: two children, and reports the rest as not dropped.
        for (int i = 0; i < 2; ++i) REQUIRE(llf_put(&z.l, 0, used[i].frame, 9) == LLF_OK);
        uint32_t remainder = 1024;
        h.dev->write_config(0, std::as_bytes(std::span(&remainder, 1)));
        CHECK(h.config_shrink_pagecache() == 1024);
        h.notify(HA_NOTIFY_PAGECACHE_DROPPED);
        CHECK(h.counter("hard_frames") == 6);
        CHECK(h.rings[HA_QUEUE_NOTIFY].used_idx() == 1);
        // A notification's retry does not ask again (no ping-pong with the guest).
        CHECK(h.irq->config_changes == 1);
        CHECK_FALSE(h.dev->stats().pagecache_shrink_pending);

        // The next timer tick retries and asks again for what is still missing.
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        h.dev->process_backend(h.dev->backend_fds().at(0), 1);
        CHECK(h.config_shrink_pagecache() == 2 * 512);
        CHECK(h.irq->config_changes == 2);

        for (int i = 2; i < 4; ++i) REQUIRE(llf_put(&z.l, 0, used[i].frame, 9) == LLF_OK);
        h.notify(HA_NOTIFY_PAGECACHE_DROPPED);
        CHECK(h.counter("hard_frames") == 8);
        // Reached: the request is withdrawn.
        CHECK(h.config_shrink_pagecache() == 0);
        CHECK(h.irq->config_changes == 3);
    }
    SECTION("the timer retries") {
        for (int i = 0; i < 4; ++i) REQUIRE(llf_put(&z.l, 0, used[i].frame, 9) == LLF_OK);
        // Nothing happens before the period has passed (the timerfd read fails).
        h.dev->process_backend(h.dev->backend_fds().at(0), 1);
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        h.dev->process_backend(h.dev->backend_fds().at(0), 1);
        CHECK(h.counter("hard_frames") == 8);
        CHECK(h.config_shrink_pagecache() == 0);
    }
    SECTION("an unknown notification is ignored") {
        for (int i = 0; i < 4; ++i) REQUIRE(llf_put(&z.l, 0, used[i].frame, 9) == LLF_OK);
        h.notify(7);
        CHECK(h.counter("hard_frames") == 4);
        CHECK(log.contains("unknown notify value 0x7"));
        CHECK(h.rings[HA_QUEUE_NOTIFY].used_idx() == 1);
    }
}

TEST_CASE("without SHRINK_PAGECACHE the guest is not asked", "[hyperalloc][target]") {
    Harness h;
    GuestZone& z = add_default_zone(h);
    REQUIRE(h.activate(kAllFeatures & ~kFeatureShrinkPagecache).has_value());
    h.post_zones();
    for (int i = 0; i < 26; ++i) {
        llf_result r{};
        REQUIRE(llf_get(&z.l, 0, 9, &r) == LLF_OK);
    }
    REQUIRE(h.dev->set_target(16 * kMiB).has_value());
    CHECK(h.counter("hard_frames") == 4);
    CHECK(h.config_shrink_pagecache() == 0);
    CHECK(h.irq->config_changes == 0);
    CHECK_FALSE(h.dev->stats().pagecache_shrink_pending);
}
