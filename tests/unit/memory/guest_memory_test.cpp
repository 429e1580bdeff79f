#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

using namespace vmm::memory;

namespace {

constexpr uint64_t kPage = kPageSize;

// [0x0, 0x2000) and [0x2000, 0x3000) are adjacent; [0x3000, 0x5000) is a hole;
// [0x5000, 0x6000) is the last region. Given unsorted on purpose.
const std::array<GuestRange, 3> kLayout = {
    GuestRange{GuestAddress(0x5000), kPage},
    GuestRange{GuestAddress(0x0), 2 * kPage},
    GuestRange{GuestAddress(0x2000), kPage},
};

GuestMemory make(Backing backing = Backing::anonymous) {
    auto mem = GuestMemory::create(kLayout, {.backing = backing});
    REQUIRE(mem.has_value());
    return std::move(mem).value();
}

std::vector<std::byte> pattern(size_t n, uint8_t seed) {
    std::vector<std::byte> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = std::byte(static_cast<uint8_t>(seed + i * 7));
    return v;
}

std::vector<std::byte> read_back(const GuestMemory& mem, uint64_t addr, size_t n) {
    std::vector<std::byte> v(n);
    REQUIRE(mem.read(GuestAddress(addr), v).has_value());
    return v;
}

std::string create_error(std::span<const GuestRange> layout) {
    auto mem = GuestMemory::create(layout);
    REQUIRE_FALSE(mem.has_value());
    return mem.error().message();
}

}  // namespace

TEST_CASE("GuestMemory sorts regions and reports its extent", "[memory][guest]") {
    GuestMemory mem = make();
    REQUIRE(mem.regions().size() == 3);
    CHECK(mem.regions()[0].range() == GuestRange{GuestAddress(0), 2 * kPage});
    CHECK(mem.regions()[1].start() == GuestAddress(0x2000));
    CHECK(mem.regions()[2].start() == GuestAddress(0x5000));
    CHECK(mem.total_size() == 4 * kPage);
    CHECK(mem.end_address() == GuestAddress(0x6000));
    CHECK(mem.regions()[0].host_address_for_kvm() != 0);
    CHECK(mem.regions()[0].memfd() == -1);
}

TEST_CASE("GuestMemory::create rejects bad layouts", "[memory][guest]") {
    CHECK_THAT(create_error({}), Catch::Contains("no regions"));

    std::array<GuestRange, 1> empty{GuestRange{GuestAddress(0), 0}};
    CHECK_THAT(create_error(empty), Catch::Contains("empty"));

    std::array<GuestRange, 1> unaligned_start{GuestRange{GuestAddress(0x800), kPage}};
    CHECK_THAT(create_error(unaligned_start), Catch::Contains("aligned"));

    std::array<GuestRange, 1> unaligned_size{GuestRange{GuestAddress(0), kPage + 1}};
    CHECK_THAT(create_error(unaligned_size), Catch::Contains("aligned"));

    std::array<GuestRange, 2> overlap{GuestRange{GuestAddress(0x3000), 2 * kPage},
                                      GuestRange{GuestAddress(0x1000), 3 * kPage}};
    CHECK_THAT(create_error(overlap), Catch::Contains("overlap"));

    std::array<GuestRange, 2> same_start{GuestRange{GuestAddress(0), kPage},
                                         GuestRange{GuestAddress(0), kPage}};
    CHECK_THAT(create_error(same_start), Catch::Contains("overlap"));

    // Ending exactly at 2^64 would make the end address unrepresentable.
    std::array<GuestRange, 1> wraps{GuestRange{GuestAddress(UINT64_MAX - kPage + 1), kPage}};
    CHECK_THAT(create_error(wraps), Catch::Contains("wraps"));
}

TEST_CASE("read and write within one region round-trip", "[memory][guest]") {
    auto backing = GENERATE(Backing::anonymous, Backing::memfd);
    GuestMemory mem = make(backing);
    auto data = pattern(100, 3);
    REQUIRE(mem.write(GuestAddress(0x5010), data).has_value());
    CHECK(read_back(mem, 0x5010, 100) == data);
    CHECK(read_back(mem, 0x0, 16) == std::vector<std::byte>(16));  // fresh RAM is zero
}

TEST_CASE("accesses may cross into an adjacent region", "[memory][guest]") {
    GuestMemory mem = make();
    auto data = pattern(32, 9);
    REQUIRE(mem.write(GuestAddress(0x2000 - 16), data).has_value());
    CHECK(read_back(mem, 0x2000 - 16, 32) == data);
    // The second half really landed in the second region.
    CHECK(read_back(mem, 0x2000, 16) == std::vector<std::byte>(data.begin() + 16, data.end()));
    CHECK(mem.contains(GuestAddress(0), 3 * kPage));
    REQUIRE(mem.fill(GuestAddress(0x1ff0), 0x20, std::byte{0xee}).has_value());
    CHECK(read_back(mem, 0x200f, 1)[0] == std::byte{0xee});
    CHECK(read_back(mem, 0x2010, 1)[0] == std::byte{0});
}

TEST_CASE("accesses into a hole fail with the address", "[memory][guest]") {
    GuestMemory mem = make();
    std::vector<std::byte> buf(8);

    auto crossing = mem.read(GuestAddress(0x2ffc), buf);
    REQUIRE_FALSE(crossing.has_value());
    CHECK_THAT(crossing.error().message(), Catch::Contains("0x2ffc"));
    CHECK_THAT(crossing.error().message(), Catch::Contains("0x3000 is not guest RAM"));

    auto inside = mem.read(GuestAddress(0x4000), buf);
    REQUIRE_FALSE(inside.has_value());
    CHECK_THAT(inside.error().message(), Catch::Contains("0x4000"));

    CHECK_FALSE(mem.read_obj<uint32_t>(GuestAddress(0x3000)).has_value());
    CHECK_FALSE(mem.contains(GuestAddress(0x2ffc), 8));
    CHECK_FALSE(mem.contains(GuestAddress(0x4000), 0));
    CHECK(mem.contains(GuestAddress(0x2ffc), 4));
    CHECK_FALSE(mem.fill(GuestAddress(0x2000), 2 * kPage, std::byte{1}).has_value());
}

TEST_CASE("accesses past the end of RAM fail", "[memory][guest]") {
    GuestMemory mem = make();
    std::vector<std::byte> buf(8);
    auto tail = mem.read(GuestAddress(0x5ffc), buf);
    REQUIRE_FALSE(tail.has_value());
    CHECK_THAT(tail.error().message(), Catch::Contains("0x6000 is not guest RAM"));
    CHECK_FALSE(mem.read(GuestAddress(0x6000), buf).has_value());
    CHECK_FALSE(mem.read(GuestAddress(0x1'0000'0000), buf).has_value());
    CHECK_FALSE(mem.contains(GuestAddress(0x6000), 1));
}

TEST_CASE("addr + len overflow is rejected, not wrapped", "[memory][guest]") {
    // A region at the very top of the address space: a wrapped sum would land in it.
    std::array<GuestRange, 2> layout{GuestRange{GuestAddress(0), kPage},
                                     GuestRange{GuestAddress(UINT64_MAX - 2 * kPage + 1), kPage}};
    auto mem = GuestMemory::create(layout);
    REQUIRE(mem.has_value());
    std::vector<std::byte> buf(4);

    auto r = mem->read(GuestAddress(UINT64_MAX - 1), buf);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().message(), Catch::Contains("0xfffffffffffffffe"));
    CHECK_THAT(r.error().message(), Catch::Contains("wraps"));

    CHECK_FALSE(mem->write(GuestAddress(UINT64_MAX - 1), buf).has_value());
    CHECK_FALSE(mem->fill(GuestAddress(0x10), UINT64_MAX, std::byte{1}).has_value());
    CHECK_FALSE(mem->contains(GuestAddress(0x10), UINT64_MAX));
    CHECK_FALSE(mem->slice(GuestAddress(0x10), UINT64_MAX).has_value());
    CHECK_FALSE(mem->slice(GuestAddress(UINT64_MAX - 2 * kPage + 1), UINT64_MAX).has_value());
    // The top region itself is usable.
    uint64_t top = UINT64_MAX - 2 * kPage + 1;
    REQUIRE(mem->write_obj<uint64_t>(GuestAddress(top + kPage - 8), 42).has_value());
    CHECK(mem->read_obj<uint64_t>(GuestAddress(top + kPage - 8)).value() == 42);
    CHECK(read_back(*mem, 0, 8) == std::vector<std::byte>(8));
}

TEST_CASE("a failed write leaves memory untouched", "[memory][guest]") {
    GuestMemory mem = make();
    auto before = pattern(8, 50);
    REQUIRE(mem.write(GuestAddress(0x2ff8), before).has_value());
    REQUIRE(mem.write(GuestAddress(0x5ff8), before).has_value());

    auto data = pattern(16, 200);
    CHECK_FALSE(mem.write(GuestAddress(0x2ff8), data).has_value());  // into the hole
    CHECK_FALSE(mem.write(GuestAddress(0x5ff8), data).has_value());  // past the end
    CHECK_FALSE(mem.fill(GuestAddress(0x2ff8), 16, std::byte{0xff}).has_value());
    CHECK(read_back(mem, 0x2ff8, 8) == before);
    CHECK(read_back(mem, 0x5ff8, 8) == before);
}

TEST_CASE("zero-length accesses succeed without touching memory", "[memory][guest]") {
    GuestMemory mem = make();
    CHECK(mem.read(GuestAddress(0x4000), {}).has_value());
    CHECK(mem.write(GuestAddress(0x4000), {}).has_value());
    CHECK(mem.fill(GuestAddress(UINT64_MAX), 0, std::byte{1}).has_value());
}

namespace {
struct Header {
    uint32_t magic;
    uint16_t version;
    uint16_t flags;
    uint64_t length;
};
}  // namespace

TEST_CASE("read_obj/write_obj round-trip a struct", "[memory][guest]") {
    GuestMemory mem = make();
    Header h{0xfeedface, 3, 0x8001, 0x1234'5678'9abc};
    // Straddles the boundary between the two adjacent regions; no alignment needed.
    REQUIRE(mem.write_obj(GuestAddress(0x1ff5), h).has_value());
    Header back = mem.read_obj<Header>(GuestAddress(0x1ff5)).value();
    CHECK(back.magic == h.magic);
    CHECK(back.version == h.version);
    CHECK(back.flags == h.flags);
    CHECK(back.length == h.length);
    CHECK(mem.read_obj<uint8_t>(GuestAddress(0x1ff5)).value() == 0xce);  // little-endian
    CHECK_FALSE(mem.read_obj<Header>(GuestAddress(0x5ff8)).has_value());
}

TEST_CASE("atomic load/store of every word size", "[memory][guest]") {
    GuestMemory mem = make();
    REQUIRE(mem.store<uint8_t>(GuestAddress(0x11), 0xab, std::memory_order_release).has_value());
    REQUIRE(mem.store<uint16_t>(GuestAddress(0x12), 0xbeef, std::memory_order_relaxed).has_value());
    REQUIRE(mem.store<uint32_t>(GuestAddress(0x14), 0xdeadbeef, std::memory_order_seq_cst)
                .has_value());
    REQUIRE(mem.store<uint64_t>(GuestAddress(0x5ff8), 0x0102030405060708,
                                std::memory_order_release).has_value());
    CHECK(mem.load<uint8_t>(GuestAddress(0x11), std::memory_order_acquire).value() == 0xab);
    CHECK(mem.load<uint16_t>(GuestAddress(0x12), std::memory_order_acquire).value() == 0xbeef);
    CHECK(mem.load<uint32_t>(GuestAddress(0x14), std::memory_order_acquire).value() == 0xdeadbeef);
    CHECK(mem.load<uint64_t>(GuestAddress(0x5ff8), std::memory_order_acquire).value() ==
          0x0102030405060708);
    // Plain reads see the atomic stores (same bytes).
    CHECK(mem.read_obj<uint16_t>(GuestAddress(0x12)).value() == 0xbeef);
}

TEST_CASE("atomic access rejects misalignment, holes and the end", "[memory][guest]") {
    GuestMemory mem = make();
    auto mis = mem.load<uint32_t>(GuestAddress(0x1002), std::memory_order_acquire);
    REQUIRE_FALSE(mis.has_value());
    CHECK_THAT(mis.error().message(), Catch::Contains("misaligned"));
    CHECK_THAT(mis.error().message(), Catch::Contains("0x1002"));
    CHECK_FALSE(mem.load<uint16_t>(GuestAddress(0x1001), std::memory_order_relaxed).has_value());
    CHECK_FALSE(mem.store<uint64_t>(GuestAddress(0x1004), 1, std::memory_order_relaxed).has_value());
    CHECK_FALSE(mem.compare_exchange<uint64_t>(GuestAddress(0x1ffc), 0, 1).has_value());
    CHECK_FALSE(mem.load<uint32_t>(GuestAddress(0x3000), std::memory_order_relaxed).has_value());
    CHECK_FALSE(mem.store<uint8_t>(GuestAddress(0x6000), 1, std::memory_order_relaxed).has_value());
    CHECK(mem.read_obj<uint64_t>(GuestAddress(0x1000)).value() == 0);  // nothing was stored
}

TEST_CASE("compare_exchange swaps only on a match", "[memory][guest]") {
    GuestMemory mem = make();
    GuestAddress a(0x2040);
    REQUIRE(mem.store<uint32_t>(a, 5, std::memory_order_relaxed).has_value());
    CHECK(mem.compare_exchange<uint32_t>(a, 4, 9).value() == 5);  // mismatch: value seen
    CHECK(mem.load<uint32_t>(a, std::memory_order_relaxed).value() == 5);
    CHECK(mem.compare_exchange<uint32_t>(a, 5, 9).value() == 5);  // match: returns expected
    CHECK(mem.load<uint32_t>(a, std::memory_order_relaxed).value() == 9);
}

TEST_CASE("discard zeroes guest pages for both backings", "[memory][guest]") {
    auto backing = GENERATE(Backing::anonymous, Backing::memfd);
    GuestMemory mem = make(backing);
    REQUIRE(mem.fill(GuestAddress(0), 3 * kPage, std::byte{0x77}).has_value());
    REQUIRE(mem.discard(GuestAddress(0x1000), kPage).has_value());
    CHECK(read_back(mem, 0x1000, kPage) == std::vector<std::byte>(kPage));
    CHECK(read_back(mem, 0xfff, 1)[0] == std::byte{0x77});
    CHECK(read_back(mem, 0x2000, 1)[0] == std::byte{0x77});

    CHECK_FALSE(mem.discard(GuestAddress(0x1800), kPage).has_value());      // unaligned addr
    CHECK_FALSE(mem.discard(GuestAddress(0x1000), 100).has_value());        // unaligned len
    CHECK_FALSE(mem.discard(GuestAddress(0x1000), 2 * kPage).has_value());  // crosses region
    CHECK_FALSE(mem.discard(GuestAddress(0x4000), kPage).has_value());      // hole
    CHECK_FALSE(mem.discard(GuestAddress(0x5000), UINT64_MAX - kPage + 1).has_value());
    CHECK(read_back(mem, 0x2000, 1)[0] == std::byte{0x77});
}

TEST_CASE("GuestMemory can be moved", "[memory][guest]") {
    GuestMemory a = make();
    REQUIRE(a.write_obj<uint32_t>(GuestAddress(0x40), 77).has_value());
    GuestMemory b(std::move(a));
    CHECK(b.read_obj<uint32_t>(GuestAddress(0x40)).value() == 77);
    CHECK(b.total_size() == 4 * kPage);
}
