// A hostile or confused guest: corrupted allocator words and counters, ring
// protocol errors, and device resets. None of it may crash the host, discard memory
// the guest still uses, or leave the device unusable after a reset.
#include "hyperalloc_test_support.h"

using namespace vmm::balloon::hyperalloc;
using namespace vmm::balloon::hyperalloc::test;

namespace {

struct Setup {
    explicit Setup(HyperAllocOptions o = with_auto()) : h(o) {
        zone = &add_default_zone(h);
        REQUIRE(h.activate().has_value());
        h.post_zones();
        REQUIRE(h.counter("zones") == 1);
    }
    static HyperAllocOptions with_auto() {
        HyperAllocOptions o;
        o.auto_mode = true;
        return o;
    }
    Harness h;
    GuestZone* zone = nullptr;
};

}  // namespace

TEST_CASE("corrupted child and tree words cause no discard of used memory",
          "[hyperalloc][hostile]") {
    Setup s;
    // The guest uses children 0-15 (two whole trees) and fills them.
    std::vector<llf_result> used;
    for (int i = 0; i < 16; ++i) {
        llf_result r{};
        REQUIRE(llf_get(&s.zone->l, 0, 9, &r) == LLF_OK);
        used.push_back(r);
    }
    for (const llf_result& r : used) {
        REQUIRE(r.frame / 512 < 16);
        REQUIRE(s.h.mem.fill(GuestAddress(Harness::child_gpa(*s.zone, r.frame / 512)), kFrame,
                             std::byte{0xc3}).has_value());
    }
    // Garbage that never makes a child look entirely free: counters beyond a child or
    // a tree, the reserved bit, huge children with counts.
    const uint16_t child_garbage[] = {0xffff, 0x3fff, 0x7e00, 0x4200, 0xbfff, 0x0201};
    for (uint64_t c = 0; c < 16; ++c) s.h.poke_child(*s.zone, c, child_garbage[c % 6]);
    s.h.poke_tree(*s.zone, 0, 0x1fff);                       // 8191 free: more than a tree
    s.h.poke_tree(*s.zone, 1, llf_tree_make(4096, true, 0)); // reserved
    s.h.set_free_counter(*s.zone, -1000000);  // nonsense: the host must not care

    REQUIRE(s.h.dev->set_target(58 * kMiB).has_value());
    s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.counter("hard_frames") == 14);  // the two untouched trees only
    for (uint64_t c = 0; c < 16; ++c) {
        INFO("child " << c);
        CHECK(memory_is(s.h.mem, Harness::child_gpa(*s.zone, c), kFrame, 0xc3));
    }
    // The nonsense counter was adjusted all the same; statistics clamp it.
    CHECK(s.h.free_counter(*s.zone) == -1000000 - 14 * 512);
    CHECK(s.h.dev->stats().guest_free_bytes == 0);
    s.h.set_free_counter(*s.zone, INT64_MAX);
    CHECK(s.h.dev->stats().guest_free_bytes == 64 * kMiB);
    // Returning 14 frames wraps the counter past INT64_MAX: still no failure.
    s.h.set_free_counter(*s.zone, INT64_MAX - 100);
    REQUIRE(s.h.dev->set_target(0).has_value());
    CHECK(s.h.counter("hard_frames") == 0);
    CHECK(static_cast<uint64_t>(s.h.free_counter(*s.zone)) == uint64_t{INT64_MAX} - 100 + 14 * 512);
    CHECK(s.h.dev->stats().guest_free_bytes == 0);
}

TEST_CASE("a hard frame the guest changed is still considered returned", "[hyperalloc][hostile]") {
    Setup s;
    REQUIRE(s.h.dev->set_target(4 * kMiB).has_value());
    REQUIRE(s.h.counter("hard_frames") == 2);
    s.h.poke_child(*s.zone, 0, 0);  // was (huge, reclaimed, 0 free)
    s.h.poke_tree(*s.zone, 0, 4096);  // cannot take 512 more
    LogCapture log;
    REQUIRE(s.h.dev->set_target(0).has_value());
    CHECK(s.h.counter("hard_frames") == 0);
    CHECK(s.h.counter("soft_frames") == 2);
    CHECK(log.contains("child 0 of the NORMAL zone was changed by the guest while hard-reclaimed"));
    CHECK(log.contains("tree 0 counter corrupted by the guest"));
}

TEST_CASE("a ring protocol error stops the device until reset", "[hyperalloc][hostile]") {
    Setup s;
    dvt::TestRing& ring = s.h.rings[HA_QUEUE_INSTALL_FIRST];
    ring.set_avail_idx(5);  // five chains on a one-entry ring
    s.h.dev->process_queue(HA_QUEUE_INSTALL_FIRST);
    CHECK(s.h.irq->needs_reset == 1);
    s.h.dev->process_queue(HA_QUEUE_INFO);  // ignored while broken
    s.h.dev->process_queue(99);             // no such queue: ignored
    CHECK(s.h.irq->needs_reset == 1);

    s.h.dev->reset();
    REQUIRE(s.h.activate().has_value());
    s.h.post_zones();
    CHECK(s.h.counter("zones") == 1);
    CHECK(s.h.install(0) == HA_INSTALL_OK);
}

TEST_CASE("reset returns hard frames and forgets the zones", "[hyperalloc][hostile]") {
    Setup s;
    int64_t initial = s.h.free_counter(*s.zone);
    REQUIRE(s.h.dev->set_target(16 * kMiB).has_value());
    s.h.dev->run_auto_pass_for_test();
    REQUIRE(s.h.counter("hard_frames") == 8);
    s.h.dev->reset();
    CHECK(s.h.counter("zones") == 0);
    CHECK(s.h.counter("hard_frames") == 0);
    CHECK(s.h.counter("soft_frames") == 0);
    CHECK(s.h.free_counter(*s.zone) == initial);
    for (uint64_t c = 0; c < 30; ++c) CHECK(s.h.child_entry(*s.zone, c) == llf_child_make(512, false, true));
    // No queue work after reset, and nothing crashes.
    s.h.dev->process_queue(HA_QUEUE_INSTALL_FIRST);
    s.h.dev->run_auto_pass_for_test();
    CHECK(s.h.dev->stats().zones.empty());
    CHECK_FALSE(s.h.dev->stats().guest_free_bytes.has_value());

    // The target survives: a re-activated driver reporting its zones gets it again.
    CHECK(s.h.dev->target_bytes() == 16 * kMiB);
    REQUIRE(s.h.activate().has_value());
    CHECK(s.h.install(0) == HA_INSTALL_ERR_ZONE);
    s.h.post_zones();
    CHECK(s.h.counter("hard_frames") == 8);
}

TEST_CASE("activation checks the queues", "[hyperalloc][hostile]") {
    Harness h;
    vmm::devices::virtio::ActivateContext ctx;
    ctx.memory = &h.mem;
    ctx.interrupt = h.irq;
    ctx.acked_features = kAllFeatures;
    h.rings.emplace_back(h.mem, 8, 0x10000);
    ctx.queues.push_back(h.rings.back().make_queue(8));
    auto too_few = h.dev->activate(ctx);
    REQUIRE_FALSE(too_few.has_value());
    CHECK_THAT(too_few.error().message(), Catch::Contains("1 queues configured, the device has 3"));

    ctx.queues.assign(3, vmm::devices::virtio::Queue(8));  // none ready
    auto not_ready = h.dev->activate(ctx);
    REQUIRE_FALSE(not_ready.has_value());
    CHECK_THAT(not_ready.error().message(), Catch::Contains("info queue is not ready"));

    vmm::devices::virtio::ActivateContext no_mem;
    CHECK_FALSE(h.dev->activate(std::move(no_mem)).has_value());
}

TEST_CASE("frames in a RAM hole are never installed or soft-reclaimed", "[hyperalloc][hostile]") {
    Harness h(Setup::with_auto(), {{GuestAddress(0), 32 * kMiB}, {GuestAddress(40 * kMiB), 24 * kMiB}});
    GuestZone& z = add_default_zone(h);  // claims [32, 40) MiB, children 14-17, free
    REQUIRE(h.activate().has_value());
    {
        LogCapture log;
        h.post_zones();
        CHECK(log.contains("30 frames of 2 MiB (4 not RAM of one region: never reclaimed)"));
    }
    h.dev->run_auto_pass_for_test();
    CHECK(h.counter("soft_frames") == 26);
    for (uint64_t c = 14; c < 18; ++c) CHECK_FALSE(llf_child_reclaimed(h.child_entry(z, c)));
    // The guest marks a hole child reclaimed itself and asks for it.
    h.poke_child(z, 15, llf_child_make(512, false, true));
    LogCapture log;
    CHECK(h.install(15 * 512) == HA_INSTALL_ERR_BACKING);
    CHECK(log.contains("its 2 MiB at 0x2200000 are not RAM of one region"));
    CHECK(h.counter("install_errors") == 1);
}
