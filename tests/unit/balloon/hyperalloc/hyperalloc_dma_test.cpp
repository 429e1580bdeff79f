// The DMA mapper hook (VFIO): reclaimed ranges are unmapped before their memory is
// discarded, an installed frame is mapped before the guest sees the install
// complete, a failure keeps memory backed, and reset maps all of RAM again.
#include "hyperalloc_test_support.h"

using namespace vmm::balloon::hyperalloc;
using namespace vmm::balloon::hyperalloc::test;

namespace {

struct DmaSetup {
    DmaSetup() : h(options()), mapper(std::make_shared<RecordingMapper>()) {
        zone = &add_default_zone(h, {12 * 512});
        h.dev->set_dma_mapper(mapper);
        REQUIRE(h.mem.fill(GuestAddress(kZoneStart), 60 * kMiB, std::byte{0x77}).has_value());
        REQUIRE(h.activate().has_value());
        h.post_zones();
    }
    static HyperAllocOptions options() {
        HyperAllocOptions o;
        o.auto_mode = true;
        return o;
    }
    Harness h;
    std::shared_ptr<RecordingMapper> mapper;
    GuestZone* zone = nullptr;
};

}  // namespace

TEST_CASE("reclaimed ranges are unmapped before they are discarded", "[hyperalloc][dma]") {
    DmaSetup s;
    int unmapped_intact = 0;
    s.mapper->on_call = [&](const RecordingMapper::Call& c) {
        if (!c.map && memory_is(s.h.mem, c.addr, c.len, 0x77)) ++unmapped_intact;
    };
    REQUIRE(s.h.dev->set_target(20 * kMiB).has_value());
    s.h.dev->run_auto_pass_for_test();
    // Every unmap saw the memory still there, and each range is one unmap + one discard.
    CHECK(s.mapper->errors == 0);
    CHECK(unmapped_intact == static_cast<int>(s.mapper->calls.size()));
    CHECK(s.mapper->calls.size() == s.h.counter("discard_calls"));
    CHECK(s.mapper->unmapped.size() == 29);  // every child but the used one
    CHECK(s.mapper->unmapped.count((Harness::child_gpa(*s.zone, 12)) / kFrame) == 0);
}

TEST_CASE("an install maps the frame before the request completes", "[hyperalloc][dma]") {
    DmaSetup s;
    s.h.dev->run_auto_pass_for_test();
    llf_result r{};
    REQUIRE(llf_get(&s.h.guest_zones[0]->l, 0, 9, &r) == LLF_OK);
    REQUIRE(r.reclaimed_mask == 1);
    uint64_t child = r.frame / 512;
    dvt::TestRing& ring = s.h.rings[HA_QUEUE_INSTALL_FIRST];
    bool mapped_before_completion = false;
    s.mapper->on_call = [&](const RecordingMapper::Call& c) {
        mapped_before_completion = c.map && c.addr == Harness::child_gpa(*s.zone, child) &&
                                   c.len == kFrame && ring.used_idx() == 0 &&
                                   llf_child_reclaimed(s.h.child_entry(*s.zone, child));
    };
    CHECK(s.h.install(r.frame) == HA_INSTALL_OK);
    CHECK(mapped_before_completion);
    CHECK(s.mapper->errors == 0);
    CHECK(s.mapper->unmapped.count(Harness::child_gpa(*s.zone, child) / kFrame) == 0);
}

TEST_CASE("a failed DMA map fails the install and leaves the frame reclaimed", "[hyperalloc][dma]") {
    DmaSetup s;
    s.h.dev->run_auto_pass_for_test();
    llf_result r{};
    REQUIRE(llf_get(&s.zone->l, 0, 9, &r) == LLF_OK);
    s.mapper->fail_next = true;
    CHECK(s.h.install(r.frame) == HA_INSTALL_ERR_BACKING);
    CHECK(llf_child_reclaimed(s.h.child_entry(*s.zone, r.frame / 512)));
    CHECK(s.h.install(r.frame) == HA_INSTALL_OK);
    CHECK(s.mapper->errors == 0);
}

TEST_CASE("a failed DMA unmap keeps the memory backed", "[hyperalloc][dma]") {
    DmaSetup s;
    s.mapper->fail_next = true;
    LogCapture log;
    REQUIRE(s.h.dev->set_target(2 * kMiB).has_value());
    CHECK(s.h.counter("hard_frames") == 1);
    CHECK(s.h.counter("discard_calls") == 0);
    CHECK(memory_is(s.h.mem, Harness::child_gpa(*s.zone, 0), kFrame, 0x77));
    CHECK(log.contains("its memory stays backed"));
}

TEST_CASE("reset maps all of RAM again", "[hyperalloc][dma]") {
    DmaSetup s;
    REQUIRE(s.h.dev->set_target(20 * kMiB).has_value());
    s.h.dev->run_auto_pass_for_test();
    REQUIRE(s.mapper->unmapped.size() == 29);
    s.h.dev->reset();
    CHECK(s.mapper->unmapped.empty());
    CHECK(s.mapper->errors == 0);
    CHECK(s.h.counter("zones") == 0);
}
