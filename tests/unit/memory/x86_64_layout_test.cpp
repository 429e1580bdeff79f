#include <catch2/catch.hpp>

#include "memory/guest_memory.h"
#include "memory/x86_64_layout.h"

using namespace vmm::memory;
using namespace vmm::memory::x86_64;

TEST_CASE("ram_layout below 3 GiB is one low region", "[memory][layout]") {
    auto layout = ram_layout(512 * MiB);
    REQUIRE(layout.size() == 1);
    CHECK(layout[0] == GuestRange{GuestAddress(0), 512 * MiB});
}

TEST_CASE("ram_layout of exactly 3 GiB stops at the MMIO hole", "[memory][layout]") {
    auto layout = ram_layout(3 * GiB);
    REQUIRE(layout.size() == 1);
    CHECK(layout[0] == GuestRange{GuestAddress(0), kMmioHoleStart});
}

TEST_CASE("ram_layout above 3 GiB continues at 4 GiB", "[memory][layout]") {
    auto layout = ram_layout(3 * GiB + 4 * KiB);
    REQUIRE(layout.size() == 2);
    CHECK(layout[0] == GuestRange{GuestAddress(0), 3 * GiB});
    CHECK(layout[1] == GuestRange{GuestAddress(kHighRamStart), 4 * KiB});

    layout = ram_layout(8 * GiB);
    REQUIRE(layout.size() == 2);
    CHECK(layout[1] == GuestRange{GuestAddress(4 * GiB), 5 * GiB});
    CHECK(layout[0].size + layout[1].size == 8 * GiB);
}

TEST_CASE("ram_layout drops a sub-page tail and handles zero", "[memory][layout]") {
    CHECK(ram_layout(0).empty());
    CHECK(ram_layout(4 * KiB - 1).empty());
    auto layout = ram_layout(64 * MiB + 123);
    REQUIRE(layout.size() == 1);
    CHECK(layout[0].size == 64 * MiB);
}

TEST_CASE("MMIO windows lie inside the hole and do not overlap", "[memory][layout]") {
    STATIC_REQUIRE(kMmioHoleStart + kMmioHoleSize == kHighRamStart);
    STATIC_REQUIRE(kVirtioMmioBase >= kMmioHoleStart);
    STATIC_REQUIRE(kVirtioMmioBase < kPciEcamBase);
    STATIC_REQUIRE(kPciEcamBase + kPciEcamSize <= kIoapicBase);
    STATIC_REQUIRE(kIoapicBase < kLapicBase);
    STATIC_REQUIRE(kLapicBase + 4 * KiB <= kHighRamStart);
}

TEST_CASE("GuestMemory over a >3 GiB layout has a hole at 3 GiB", "[memory][layout]") {
    // NORESERVE mappings: only the pages the test touches are ever allocated.
    auto mem = GuestMemory::create(ram_layout(3 * GiB + 64 * KiB), {.transparent_huge_pages = false});
    REQUIRE(mem.has_value());
    CHECK(mem->total_size() == 3 * GiB + 64 * KiB);
    CHECK(mem->end_address() == GuestAddress(4 * GiB + 64 * KiB));
    CHECK(mem->contains(GuestAddress(3 * GiB - 8), 8));
    CHECK_FALSE(mem->contains(GuestAddress(3 * GiB - 8), 16));
    CHECK_FALSE(mem->contains(GuestAddress(kIoapicBase), 4));
    REQUIRE(mem->write_obj<uint64_t>(GuestAddress(4 * GiB), 0x1122334455667788).has_value());
    CHECK(mem->read_obj<uint64_t>(GuestAddress(4 * GiB)).value() == 0x1122334455667788);
    auto bad = mem->write_obj<uint32_t>(GuestAddress(3 * GiB - 2), 0);
    REQUIRE_FALSE(bad.has_value());
    CHECK_THAT(bad.error().message(), Catch::Contains("0xc0000000"));
}
