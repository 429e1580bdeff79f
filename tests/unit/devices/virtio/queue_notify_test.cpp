// Queue interrupt-suppression: VIRTQ_AVAIL_F_NO_INTERRUPT and VIRTIO_F_EVENT_IDX.
#include "devices/virtio/queue.h"

#include <catch2/catch.hpp>

#include <cstdint>

#include "virtio_test_support.h"

using namespace vmm::devices::virtio;
using namespace vmm::devices::virtio::test;

namespace {

constexpr uint64_t kData = kTestDataAddr;

DescriptorChain require_pop(Queue& q, const vmm::memory::GuestMemory& mem) {
    auto r = q.pop(mem);
    if (!r) FAIL(r.error().message());
    REQUIRE(r->has_value());
    return std::move(**r);
}

}  // namespace

TEST_CASE("queue: NO_INTERRUPT suppresses notifications without EVENT_IDX", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    REQUIRE(q.add_used(mem, 0, 1).has_value());
    CHECK(*q.needs_notification(mem));
    ring.set_avail_flags(1);
    REQUIRE(q.add_used(mem, 1, 1).has_value());
    CHECK_FALSE(*q.needs_notification(mem));
    ring.set_avail_flags(0);
    CHECK(*q.needs_notification(mem));
}

TEST_CASE("queue: EVENT_IDX notification decisions", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    q.set_event_idx(true);
    // NO_INTERRUPT is ignored under EVENT_IDX.
    ring.set_avail_flags(1);
    ring.set_used_event(5);
    // The first decision after activation always notifies.
    CHECK(*q.needs_notification(mem));
    // Nothing added since: no interrupt.
    CHECK_FALSE(*q.needs_notification(mem));

    auto add = [&](int n) {
        for (int i = 0; i < n; ++i) REQUIRE(q.add_used(mem, 0, 0).has_value());
    };
    add(1);  // old 0, new 1
    SECTION("used_event equal to old") {
        ring.set_used_event(0);
        CHECK(*q.needs_notification(mem));
    }
    SECTION("used_event ahead") {
        ring.set_used_event(1);
        CHECK_FALSE(*q.needs_notification(mem));
    }
    SECTION("batch: used_event within, behind and ahead of the new range") {
        ring.set_used_event(1);
        CHECK_FALSE(*q.needs_notification(mem));  // old := 1
        add(2);                                    // new 3
        ring.set_used_event(0);                    // behind old: already signalled
        CHECK_FALSE(*q.needs_notification(mem));
        add(2);  // old 3, new 5
        ring.set_used_event(4);
        CHECK(*q.needs_notification(mem));
        add(2);  // old 5, new 7
        ring.set_used_event(7);
        CHECK_FALSE(*q.needs_notification(mem));
        add(1);  // old 7, new 8
        CHECK(*q.needs_notification(mem));  // used_event 7 reached now
    }
    SECTION("wraparound at 65535") {
        add(65533);  // next_used 65534
        REQUIRE(q.next_used() == 65534);
        ring.set_used_event(0);
        CHECK(*q.needs_notification(mem));  // 0 lies in [0, 65534); old := 65534
        add(3);                              // new 1 (wrapped)
        REQUIRE(q.next_used() == 1);
        ring.set_used_event(65535);
        CHECK(*q.needs_notification(mem));
        add(3);  // old 1, new 4
        ring.set_used_event(65533);  // far behind
        CHECK_FALSE(*q.needs_notification(mem));
        add(3);  // old 4, new 7
        ring.set_used_event(6);
        CHECK(*q.needs_notification(mem));
    }
}

TEST_CASE("queue: EVENT_IDX wraparound decision matches vring_need_event", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    q.set_event_idx(true);
    for (int i = 0; i < 65534; ++i) REQUIRE(q.add_used(mem, 0, 0).has_value());
    CHECK(*q.needs_notification(mem));  // first decision; old := 65534
    for (int i = 0; i < 3; ++i) REQUIRE(q.add_used(mem, 0, 0).has_value());  // new := 1
    uint16_t used_event = GENERATE(uint16_t{65533}, uint16_t{65534}, uint16_t{65535}, uint16_t{0},
                                   uint16_t{1}, uint16_t{2});
    ring.set_used_event(used_event);
    // Interrupt iff used_event is one of 65534, 65535, 0 (the entries just used).
    bool expected = used_event == 65534 || used_event == 65535 || used_event == 0;
    CHECK(*q.needs_notification(mem) == expected);
}

TEST_CASE("queue: EVENT_IDX makes pop publish avail_event", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    ring.add_chain({{kData, 8, false}});
    ring.add_chain({{kData, 8, false}});
    ring.publish();
    SECTION("off") {
        require_pop(q, mem);
        CHECK(ring.avail_event() == 0);
    }
    SECTION("on") {
        q.set_event_idx(true);
        require_pop(q, mem);
        CHECK(ring.avail_event() == 1);
        require_pop(q, mem);
        CHECK(ring.avail_event() == 2);
        CHECK_FALSE(q.pop(mem)->has_value());
        CHECK(ring.avail_event() == 2);
    }
}
