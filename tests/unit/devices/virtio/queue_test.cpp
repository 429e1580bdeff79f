#include "devices/virtio/queue.h"

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <vector>

#include "virtio_test_support.h"

using namespace vmm::devices::virtio;
using namespace vmm::devices::virtio::test;
using vmm::memory::GuestAddress;
using vmm::memory::GuestMemory;
using vmm::memory::GuestRange;

namespace {

constexpr uint64_t kData = kTestDataAddr;

// Pops and expects a protocol error whose message mentions `what`.
void require_pop_error(Queue& q, const GuestMemory& mem, const std::string& what) {
    auto r = q.pop(mem);
    REQUIRE_FALSE(r.has_value());
    INFO(r.error().message());
    CHECK(r.error().message().find(what) != std::string::npos);
}

DescriptorChain require_pop(Queue& q, const GuestMemory& mem) {
    auto r = q.pop(mem);
    if (!r) FAIL(r.error().message());
    REQUIRE(r->has_value());
    return std::move(**r);
}

GuestMemory make_memory(std::vector<GuestRange> layout) {
    auto mem = GuestMemory::create(layout);
    REQUIRE(mem.has_value());
    return std::move(mem).value();
}

}  // namespace

TEST_CASE("queue: pops a published chain with its buffers in order", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 16);
    Queue q = ring.make_queue();
    REQUIRE(q.validate(mem).has_value());

    auto empty = q.pop(mem);
    REQUIRE(empty.has_value());
    CHECK_FALSE(empty->has_value());

    uint16_t head = ring.add_chain({{kData, 100, false}, {kData + 0x1000, 20, false},
                                    {kData + 0x2000, 50, true}});
    // Not yet published: the device must not see it.
    CHECK(*q.pending(mem) == 0);
    ring.publish();
    CHECK(*q.pending(mem) == 1);

    DescriptorChain c = require_pop(q, mem);
    CHECK(c.head() == head);
    REQUIRE(c.descriptors().size() == 3);
    CHECK(c.descriptors()[0].addr == GuestAddress(kData));
    CHECK(c.descriptors()[0].len == 100);
    CHECK_FALSE(c.descriptors()[0].device_writable);
    CHECK(c.descriptors()[2].addr == GuestAddress(kData + 0x2000));
    CHECK(c.descriptors()[2].device_writable);
    CHECK(c.readable_bytes() == 120);
    CHECK(c.writable_bytes() == 50);
    CHECK(q.next_avail() == 1);
    CHECK(*q.pending(mem) == 0);
    CHECK_FALSE(q.pop(mem)->has_value());
}

TEST_CASE("queue: a queue that is not ready yields nothing", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    q.set_ready(false);
    ring.add_chain({{kData, 8, false}});
    ring.publish();
    auto r = q.pop(mem);
    REQUIRE(r.has_value());
    CHECK_FALSE(r->has_value());
}

TEST_CASE("queue: zero-length buffers are kept", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    ring.add_chain({{kData, 0, false}, {kData + 0x100, 4, true}});
    ring.publish();
    DescriptorChain c = require_pop(q, mem);
    REQUIRE(c.descriptors().size() == 2);
    CHECK(c.descriptors()[0].len == 0);
    CHECK(c.writable_bytes() == 4);
}

TEST_CASE("queue: descriptor loops end in an error", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    SECTION("a -> b -> a") {
        ring.write_desc(0, {kData, 8, kDescNext, 1});
        ring.write_desc(1, {kData, 8, kDescNext, 0});
    }
    SECTION("self loop") { ring.write_desc(0, {kData, 8, kDescNext, 0}); }
    ring.push_avail(0);
    ring.publish();
    require_pop_error(q, mem, "loop");
    // The broken chain is not consumed.
    CHECK(q.next_avail() == 0);
}

TEST_CASE("queue: indices out of range are errors", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    SECTION("next index") {
        ring.write_desc(0, {kData, 8, kDescNext, 8});
        ring.push_avail(0);
        ring.publish();
        require_pop_error(q, mem, "next index 8");
    }
    SECTION("head index") {
        ring.write_desc(0, {kData, 8, 0, 0});
        ring.push_avail(8);
        ring.publish();
        require_pop_error(q, mem, "head index 8");
    }
    SECTION("head index 0xffff") {
        ring.push_avail(0xffff);
        ring.publish();
        require_pop_error(q, mem, "head index");
    }
}

TEST_CASE("queue: avail idx more than size ahead is an error", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    for (int i = 0; i < 8; ++i) ring.add_chain({{kData, 8, false}});
    ring.set_avail_idx(8);
    CHECK(*q.pending(mem) == 8);
    ring.set_avail_idx(9);
    CHECK_FALSE(q.pending(mem).has_value());
    require_pop_error(q, mem, "more than the queue size");
    ring.set_avail_idx(0x8000);
    require_pop_error(q, mem, "more than the queue size");
}

TEST_CASE("queue: chain length is bounded by kMaxChainLength", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 4096);  // room for both chains without reuse
    Queue q = ring.make_queue();
    REQUIRE(q.validate(mem).has_value());
    std::vector<BufferSpec> bufs(Queue::kMaxChainLength, BufferSpec{kData, 1, false});
    ring.add_chain(bufs);
    bufs.push_back({kData, 1, false});
    ring.add_chain(bufs);
    ring.publish();
    CHECK(require_pop(q, mem).descriptors().size() == Queue::kMaxChainLength);
    require_pop_error(q, mem, "chain longer than");
}

TEST_CASE("queue: buffers outside guest RAM are errors", "[virtio][queue]") {
    auto mem = make_test_memory(2 << 20);
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    SECTION("address beyond RAM") { ring.add_chain({{4ULL << 20, 8, false}}); }
    SECTION("address + len wraps past 2^64") {
        ring.add_chain({{UINT64_MAX - 7, 16, true}});
    }
    SECTION("address near 2^64, len 1") { ring.add_chain({{UINT64_MAX, 1, true}}); }
    SECTION("crossing the end of RAM") { ring.add_chain({{(2 << 20) - 8, 9, true}}); }
    SECTION("second buffer bad") {
        ring.add_chain({{kData, 8, false}, {(2 << 20) - 0x10, 0xffffffff, true}});
    }
    ring.publish();
    require_pop_error(q, mem, "not inside guest RAM");
}

TEST_CASE("queue: buffers may span adjacent regions but not holes", "[virtio][queue]") {
    SECTION("adjacent") {
        auto mem = make_memory({{GuestAddress(0), 2 << 20}, {GuestAddress(2 << 20), 2 << 20}});
        TestRing ring(mem, 8);
        Queue q = ring.make_queue();
        ring.add_chain({{(2 << 20) - 0x100, 0x200, true}});
        ring.publish();
        CHECK(require_pop(q, mem).writable_bytes() == 0x200);
    }
    SECTION("hole") {
        auto mem = make_memory({{GuestAddress(0), 2 << 20}, {GuestAddress(3 << 20), 1 << 20}});
        TestRing ring(mem, 8);
        Queue q = ring.make_queue();
        SECTION("crossing into the hole") { ring.add_chain({{(2 << 20) - 0x100, 0x200, true}}); }
        SECTION("inside the hole") { ring.add_chain({{(2 << 20) + 0x1000, 0x10, true}}); }
        ring.publish();
        require_pop_error(q, mem, "not inside guest RAM");
    }
}

TEST_CASE("queue: device-readable after device-writable is an error", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    q.set_indirect_allowed(true);
    SECTION("direct") { ring.add_chain({{kData, 8, true}, {kData + 8, 8, false}}); }
    SECTION("indirect") { ring.add_indirect_chain({{kData, 8, true}, {kData + 8, 8, false}}); }
    ring.publish();
    require_pop_error(q, mem, "device-readable descriptor after");
}

TEST_CASE("queue: indirect tables", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    q.set_indirect_allowed(true);

    SECTION("resolved into the chain") {
        uint16_t head = ring.add_indirect_chain(
            {{kData, 10, false}, {kData + 0x100, 20, false}, {kData + 0x200, 30, true}});
        ring.publish();
        DescriptorChain c = require_pop(q, mem);
        CHECK(c.head() == head);
        REQUIRE(c.descriptors().size() == 3);
        CHECK(c.descriptors()[1].addr == GuestAddress(kData + 0x100));
        CHECK(c.readable_bytes() == 30);
        CHECK(c.writable_bytes() == 30);
    }
    SECTION("after direct descriptors") {
        uint64_t table = ring.write_indirect_table({{kData + 0x100, 20, kDescWrite, 0}});
        ring.write_desc(0, {kData, 10, kDescNext, 1});
        ring.write_desc(1, {table, 16, kDescIndirect, 0});
        ring.push_avail(0);
        ring.publish();
        DescriptorChain c = require_pop(q, mem);
        REQUIRE(c.descriptors().size() == 2);
        CHECK(c.readable_bytes() == 10);
        CHECK(c.writable_bytes() == 20);
    }
    SECTION("not negotiated") {
        q.set_indirect_allowed(false);
        ring.add_indirect_chain({{kData, 10, false}});
        ring.publish();
        require_pop_error(q, mem, "not negotiated");
    }
    SECTION("length not a multiple of 16") {
        uint64_t table = ring.write_indirect_table({{kData, 10, 0, 0}, {kData, 10, 0, 0}});
        ring.write_desc(0, {table, 24, kDescIndirect, 0});
        ring.push_avail(0);
        ring.publish();
        require_pop_error(q, mem, "multiple of 16");
    }
    SECTION("zero length") {
        uint64_t table = ring.write_indirect_table({{kData, 10, 0, 0}});
        ring.write_desc(0, {table, 0, kDescIndirect, 0});
        ring.push_avail(0);
        ring.publish();
        require_pop_error(q, mem, "multiple of 16");
    }
    SECTION("nested indirect") {
        uint64_t inner = ring.write_indirect_table({{kData, 10, 0, 0}});
        uint64_t outer = ring.write_indirect_table({{inner, 16, kDescIndirect, 0}});
        ring.write_desc(0, {outer, 16, kDescIndirect, 0});
        ring.push_avail(0);
        ring.publish();
        require_pop_error(q, mem, "nested indirect");
    }
    SECTION("indirect together with NEXT") {
        uint64_t table = ring.write_indirect_table({{kData, 10, 0, 0}});
        ring.write_desc(0, {table, 16, kDescIndirect | kDescNext, 1});
        ring.write_desc(1, {kData, 10, 0, 0});
        ring.push_avail(0);
        ring.publish();
        require_pop_error(q, mem, "must not have NEXT");
    }
    SECTION("table outside RAM") {
        ring.write_desc(0, {(2 << 20) - 16, 32, kDescIndirect, 0});
        ring.push_avail(0);
        ring.publish();
        require_pop_error(q, mem, "indirect table");
    }
    SECTION("table address wraps") {
        ring.write_desc(0, {UINT64_MAX - 15, 32, kDescIndirect, 0});
        ring.push_avail(0);
        ring.publish();
        require_pop_error(q, mem, "indirect table");
    }
    SECTION("loop inside the table") {
        uint64_t table = ring.write_indirect_table({{kData, 10, kDescNext, 1}, {kData, 10, kDescNext, 0}});
        ring.write_desc(0, {table, 32, kDescIndirect, 0});
        ring.push_avail(0);
        ring.publish();
        require_pop_error(q, mem, "loop");
    }
    SECTION("next beyond the table") {
        uint64_t table = ring.write_indirect_table({{kData, 10, kDescNext, 2}, {kData, 10, 0, 0}});
        ring.write_desc(0, {table, 32, kDescIndirect, 0});
        ring.push_avail(0);
        ring.publish();
        require_pop_error(q, mem, "out of range");
    }
    SECTION("bad buffer inside the table") {
        ring.add_indirect_chain({{kData, 10, false}, {16ULL << 20, 10, true}});
        ring.publish();
        require_pop_error(q, mem, "not inside guest RAM");
    }
    SECTION("too many entries") {
        std::vector<RawDesc> table(Queue::kMaxChainLength + 1, RawDesc{kData, 1, 0, 0});
        uint64_t addr = ring.write_indirect_table(table);
        ring.write_desc(0, {addr, static_cast<uint32_t>(16 * table.size()), kDescIndirect, 0});
        ring.push_avail(0);
        ring.publish();
        require_pop_error(q, mem, "exceeds the limit");
    }
}

TEST_CASE("queue: validate checks size, alignment and placement", "[virtio][queue]") {
    auto mem = make_test_memory(2 << 20);
    TestRing ring(mem, 8);
    Queue q = ring.make_queue(256);
    REQUIRE(q.validate(mem).has_value());

    SECTION("size") {
        for (uint16_t bad : {uint16_t{0}, uint16_t{3}, uint16_t{12}, uint16_t{512}}) {
            q.set_size(bad);
            CHECK_FALSE(q.validate(mem).has_value());
        }
        q.set_size(256);
        CHECK(q.validate(mem).has_value());
        q.set_size(1);
        CHECK(q.validate(mem).has_value());
    }
    SECTION("alignment") {
        q.set_desc_table(GuestAddress(ring.desc_addr() + 8));
        CHECK_FALSE(q.validate(mem).has_value());
        q.set_desc_table(GuestAddress(ring.desc_addr()));
        q.set_avail_ring(GuestAddress(ring.avail_addr() + 1));
        CHECK_FALSE(q.validate(mem).has_value());
        q.set_avail_ring(GuestAddress(ring.avail_addr() + 2));
        CHECK(q.validate(mem).has_value());
        q.set_used_ring(GuestAddress(ring.used_addr() + 2));
        CHECK_FALSE(q.validate(mem).has_value());
        q.set_used_ring(GuestAddress(ring.used_addr() + 4));
        CHECK(q.validate(mem).has_value());
    }
    SECTION("rings at the end of RAM") {
        const uint64_t end = 2 << 20;
        // desc: 8 * 16 bytes; avail: 4 + 16 + 2; used: 4 + 64 + 2 (event words included).
        q.set_desc_table(GuestAddress(end - 128));
        CHECK(q.validate(mem).has_value());
        q.set_desc_table(GuestAddress(end - 112));
        CHECK_FALSE(q.validate(mem).has_value());
        q.set_desc_table(GuestAddress(ring.desc_addr()));
        q.set_avail_ring(GuestAddress(end - 22));
        CHECK(q.validate(mem).has_value());
        q.set_avail_ring(GuestAddress(end - 20));  // used_event would lie past the end
        CHECK_FALSE(q.validate(mem).has_value());
        q.set_avail_ring(GuestAddress(ring.avail_addr()));
        q.set_used_ring(GuestAddress(end - 72));
        CHECK(q.validate(mem).has_value());
        q.set_used_ring(GuestAddress(end - 68));  // avail_event past the end
        CHECK_FALSE(q.validate(mem).has_value());
        q.set_used_ring(GuestAddress(UINT64_MAX - 3));
        CHECK_FALSE(q.validate(mem).has_value());
    }
}

TEST_CASE("queue: add_used wraps around the used ring", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 4);
    Queue q = ring.make_queue();
    for (uint16_t i = 0; i < 6; ++i) {
        REQUIRE(q.add_used(mem, static_cast<uint16_t>(i % 4), 100u + i).has_value());
        CHECK(ring.used_idx() == i + 1);
    }
    CHECK(q.next_used() == 6);
    // Elements 4 and 5 overwrote slots 0 and 1.
    for (uint16_t i = 2; i < 6; ++i) {
        CHECK(ring.used_elem(i).id == i % 4u);
        CHECK(ring.used_elem(i).len == 100u + i);
    }
    CHECK_FALSE(q.add_used(mem, 4, 0).has_value());  // id must be a valid head
}

TEST_CASE("queue: avail and used indices wrap at 2^16", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 4);
    Queue q = ring.make_queue();
    int popped = 0;
    for (uint32_t i = 0; i < 0x10005; ++i) {
        uint16_t head = ring.add_chain({{kData, static_cast<uint32_t>(i % 100), false}});
        ring.publish();
        auto r = q.pop(mem);
        if (!r || !r->has_value() || (*r)->head() != head ||
            (*r)->descriptors()[0].len != i % 100 || !q.add_used(mem, head, i)) {
            FAIL("iteration " << i);
        }
        ++popped;
    }
    CHECK(popped == 0x10005);
    CHECK(q.next_avail() == 5);
    CHECK(ring.used_idx() == 5);
    CHECK(ring.used_elem(4).len == 0x10004u);
}

TEST_CASE("queue: undo_pop returns the chain again", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue();
    uint16_t a = ring.add_chain({{kData, 8, false}});
    uint16_t b = ring.add_chain({{kData, 16, false}});
    ring.publish();
    CHECK(*q.pending(mem) == 2);
    CHECK(require_pop(q, mem).head() == a);
    CHECK(*q.pending(mem) == 1);
    q.undo_pop();
    CHECK(*q.pending(mem) == 2);
    CHECK(require_pop(q, mem).head() == a);
    CHECK(require_pop(q, mem).head() == b);
    CHECK(*q.pending(mem) == 0);
}

TEST_CASE("queue: reset returns to the initial state", "[virtio][queue]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    Queue q = ring.make_queue(64);
    q.set_event_idx(true);
    q.set_indirect_allowed(true);
    ring.add_chain({{kData, 8, false}});
    ring.publish();
    require_pop(q, mem);
    REQUIRE(q.add_used(mem, 0, 8).has_value());
    q.reset();
    CHECK(q.size() == 64);
    CHECK(q.max_size() == 64);
    CHECK_FALSE(q.ready());
    CHECK(q.next_avail() == 0);
    CHECK(q.next_used() == 0);
    CHECK(q.desc_table() == GuestAddress(0));
    CHECK(q.used_ring() == GuestAddress(0));
}
