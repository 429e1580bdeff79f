#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <vector>

#include "balloon/page_ranges.h"

using vmm::balloon::compact_page_frame_numbers;
using vmm::balloon::PfnRange;
using vmm::balloon::ranges_to_guest;
using vmm::memory::GuestAddress;
using vmm::memory::GuestMemory;
using vmm::memory::GuestRange;

namespace {

std::vector<PfnRange> compact(std::vector<uint32_t> pfns) {
    return compact_page_frame_numbers(pfns);
}

// RAM at [0, 1 MiB), then a hole, then two adjacent regions [2 MiB, 3 MiB) and
// [3 MiB, 4 MiB).
GuestMemory holey_memory() {
    std::array<GuestRange, 3> layout = {{{GuestAddress(0), 1 << 20},
                                         {GuestAddress(2 << 20), 1 << 20},
                                         {GuestAddress(3 << 20), 1 << 20}}};
    auto mem = GuestMemory::create(layout);
    REQUIRE(mem.has_value());
    return std::move(mem).value();
}

}  // namespace

TEST_CASE("compaction of an empty list is empty", "[balloon]") {
    CHECK(compact({}).empty());
}

TEST_CASE("compaction of a single pfn", "[balloon]") {
    CHECK(compact({42}) == std::vector<PfnRange>{{42, 1}});
}

TEST_CASE("compaction merges adjacent pfns and keeps gaps", "[balloon]") {
    CHECK(compact({1, 2, 3}) == std::vector<PfnRange>{{1, 3}});
    CHECK(compact({1, 3}) == std::vector<PfnRange>{{1, 1}, {3, 1}});
    CHECK(compact({10, 11, 13, 14, 15, 20}) ==
          std::vector<PfnRange>{{10, 2}, {13, 3}, {20, 1}});
}

TEST_CASE("compaction sorts and drops duplicates", "[balloon]") {
    CHECK(compact({5, 3, 4, 4, 11, 10, 3, 5}) == std::vector<PfnRange>{{3, 3}, {10, 2}});
    CHECK(compact({7, 7, 7, 7}) == std::vector<PfnRange>{{7, 1}});
    std::vector<uint32_t> reversed;
    for (uint32_t p = 1000; p > 0; --p) reversed.push_back(p - 1);
    CHECK(compact(reversed) == std::vector<PfnRange>{{0, 1000}});
}

TEST_CASE("compaction handles the largest u32 pfn without wrapping", "[balloon]") {
    auto ranges = compact({UINT32_MAX, 0, UINT32_MAX - 1, UINT32_MAX});
    REQUIRE(ranges == std::vector<PfnRange>{{0, 1}, {UINT32_MAX - 1, 2}});
    CHECK(ranges[1].first + ranges[1].count == (uint64_t{1} << 32));
}

TEST_CASE("ranges_to_guest converts a range inside one region", "[balloon]") {
    GuestMemory mem = holey_memory();
    std::vector<PfnRange> in = {{16, 4}, {600, 1}};
    auto out = ranges_to_guest(mem, in);
    REQUIRE(out.has_value());
    CHECK(*out == std::vector<GuestRange>{{GuestAddress(16 * 4096), 4 * 4096},
                                          {GuestAddress(600 * 4096), 4096}});
}

TEST_CASE("ranges_to_guest splits at a region boundary", "[balloon]") {
    GuestMemory mem = holey_memory();
    // pfn 768 is 3 MiB: the range straddles the two adjacent regions.
    std::vector<PfnRange> in = {{766, 4}};
    auto out = ranges_to_guest(mem, in);
    REQUIRE(out.has_value());
    CHECK(*out == std::vector<GuestRange>{{GuestAddress(766 * 4096), 2 * 4096},
                                          {GuestAddress(768 * 4096), 2 * 4096}});
}

TEST_CASE("ranges_to_guest rejects a range running into a hole, naming the pfn",
          "[balloon]") {
    GuestMemory mem = holey_memory();
    // pfn 256 (1 MiB) is the first page of the hole.
    std::vector<PfnRange> in = {{16, 1}, {254, 4}};
    auto out = ranges_to_guest(mem, in);
    REQUIRE_FALSE(out.has_value());
    CHECK_THAT(out.error().message(), Catch::Contains("pfn 0x100 "));
    CHECK_THAT(out.error().message(), Catch::Contains("not guest RAM"));
}

TEST_CASE("ranges_to_guest rejects a range starting inside a hole", "[balloon]") {
    GuestMemory mem = holey_memory();
    std::vector<PfnRange> in = {{300, 2}};
    auto out = ranges_to_guest(mem, in);
    REQUIRE_FALSE(out.has_value());
    CHECK_THAT(out.error().message(), Catch::Contains("pfn 0x12c "));
}

TEST_CASE("ranges_to_guest rejects pfns past the end of RAM", "[balloon]") {
    GuestMemory mem = holey_memory();
    // Starts in the last region and runs past 4 MiB (pfn 1024).
    std::vector<PfnRange> tail = {{1020, 8}};
    auto out = ranges_to_guest(mem, tail);
    REQUIRE_FALSE(out.has_value());
    CHECK_THAT(out.error().message(), Catch::Contains("pfn 0x400 "));

    std::vector<PfnRange> far = {{UINT32_MAX, 1}};
    auto far_out = ranges_to_guest(mem, far);
    REQUIRE_FALSE(far_out.has_value());
    CHECK_THAT(far_out.error().message(), Catch::Contains("pfn 0xffffffff "));
}

TEST_CASE("ranges_to_guest rejects ranges that overflow the address space", "[balloon]") {
    GuestMemory mem = holey_memory();
    std::vector<PfnRange> huge_first = {{UINT64_MAX, 1}};
    CHECK_FALSE(ranges_to_guest(mem, huge_first).has_value());
    std::vector<PfnRange> huge_count = {{1, UINT64_MAX}};
    auto out = ranges_to_guest(mem, huge_count);
    REQUIRE_FALSE(out.has_value());
    CHECK_THAT(out.error().message(), Catch::Contains("overflows"));
}

TEST_CASE("ranges_to_guest skips empty ranges and accepts an empty list", "[balloon]") {
    GuestMemory mem = holey_memory();
    std::vector<PfnRange> in = {{300, 0}, {5, 1}};
    auto out = ranges_to_guest(mem, in);
    REQUIRE(out.has_value());
    CHECK(*out == std::vector<GuestRange>{{GuestAddress(5 * 4096), 4096}});
    auto none = ranges_to_guest(mem, std::vector<PfnRange>{});
    REQUIRE(none.has_value());
    CHECK(none->empty());
}
