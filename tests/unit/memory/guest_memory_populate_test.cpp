// GuestMemory::populate: backs guest pages now (MADV_POPULATE_WRITE) without changing
// them, and checks its range like discard does. Residency is observed with mincore
// on the region's host mapping (tests only).
#include <catch2/catch.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

using namespace vmm::memory;

namespace {

constexpr uint64_t kPage = kPageSize;

// [0, 64 KiB) and [64 KiB, 128 KiB) are adjacent regions; [192 KiB, 256 KiB) after a hole.
const std::array<GuestRange, 3> kLayout = {
    GuestRange{GuestAddress(0x0), 16 * kPage},
    GuestRange{GuestAddress(0x10000), 16 * kPage},
    GuestRange{GuestAddress(0x30000), 16 * kPage},
};

GuestMemory make(Backing backing) {
    auto mem = GuestMemory::create(kLayout, {.backing = backing, .transparent_huge_pages = false});
    REQUIRE(mem.has_value());
    return std::move(mem).value();
}

// Resident flags of the pages of region `index`, one per 4 KiB page.
std::vector<bool> resident(const GuestMemory& mem, size_t index) {
    const GuestRegion& r = mem.regions()[index];
    REQUIRE(static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)) == kPage);
    std::vector<unsigned char> vec(r.size() / kPage);
    // NOLINTNEXTLINE: mincore needs the raw host address of the test mapping.
    void* host = reinterpret_cast<void*>(r.host_address_for_kvm());
    REQUIRE(::mincore(host, r.size(), vec.data()) == 0);
    std::vector<bool> out;
    for (unsigned char v : vec) out.push_back((v & 1) != 0);
    return out;
}

}  // namespace

TEST_CASE("populate backs exactly the requested pages", "[memory][guest][populate]") {
    auto backing = GENERATE(Backing::anonymous, Backing::memfd);
    GuestMemory mem = make(backing);
    // A fresh mapping has nothing resident.
    for (bool r : resident(mem, 0)) REQUIRE_FALSE(r);

    REQUIRE(mem.populate(GuestAddress(4 * kPage), 3 * kPage).has_value());
    std::vector<bool> res = resident(mem, 0);
    for (size_t i = 0; i < res.size(); ++i) {
        INFO("page " << i);
        CHECK(res[i] == (i >= 4 && i < 7));
    }
    // The populated pages read as zeroes, like any untouched guest page.
    std::array<std::byte, 16> buf{};
    buf.fill(std::byte{0xaa});
    REQUIRE(mem.read(GuestAddress(5 * kPage), buf).has_value());
    for (std::byte b : buf) CHECK(b == std::byte{0});
}

TEST_CASE("populate keeps the contents of pages already backed", "[memory][guest][populate]") {
    GuestMemory mem = make(Backing::anonymous);
    std::vector<std::byte> pattern(2 * kPage);
    for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = std::byte(static_cast<uint8_t>(i * 13 + 1));
    REQUIRE(mem.write(GuestAddress(0x10000), pattern).has_value());
    REQUIRE(mem.populate(GuestAddress(0x10000), 4 * kPage).has_value());
    std::vector<std::byte> back(pattern.size());
    REQUIRE(mem.read(GuestAddress(0x10000), back).has_value());
    CHECK(back == pattern);

    // After a discard the page is gone; populating brings it back as zeroes.
    REQUIRE(mem.discard(GuestAddress(0x10000), kPage).has_value());
    CHECK_FALSE(resident(mem, 1)[0]);
    REQUIRE(mem.populate(GuestAddress(0x10000), kPage).has_value());
    CHECK(resident(mem, 1)[0]);
    REQUIRE(mem.read(GuestAddress(0x10000), std::span(back).first(kPage)).has_value());
    for (size_t i = 0; i < kPage; ++i) REQUIRE(back[i] == std::byte{0});
}

TEST_CASE("populate rejects ranges that are unaligned or not inside one region",
          "[memory][guest][populate]") {
    GuestMemory mem = make(Backing::anonymous);
    CHECK_FALSE(mem.populate(GuestAddress(0x800), kPage).has_value());        // unaligned address
    CHECK_FALSE(mem.populate(GuestAddress(0x1000), 100).has_value());         // unaligned length
    auto crossing = mem.populate(GuestAddress(0xf000), 2 * kPage);            // into the next region
    REQUIRE_FALSE(crossing.has_value());
    CHECK_THAT(crossing.error().message(), Catch::Contains("crosses the end of its region"));
    auto hole = mem.populate(GuestAddress(0x20000), kPage);                   // hole
    REQUIRE_FALSE(hole.has_value());
    CHECK_THAT(hole.error().message(), Catch::Contains("not guest RAM"));
    CHECK_FALSE(mem.populate(GuestAddress(0x40000), kPage).has_value());      // past the end
    CHECK_FALSE(mem.populate(GuestAddress(0x30000), UINT64_MAX - kPage + 1).has_value());
    // Nothing was populated by the failed calls.
    for (bool r : resident(mem, 0)) CHECK_FALSE(r);
    // A zero-length populate inside RAM does nothing and succeeds.
    CHECK(mem.populate(GuestAddress(0x1000), 0).has_value());
}
