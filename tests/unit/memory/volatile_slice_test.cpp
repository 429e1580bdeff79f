#include <catch2/catch.hpp>

#include <array>
#include <vector>

#include "memory/guest_memory.h"

using namespace vmm::memory;

namespace {

GuestMemory make() {
    // Two adjacent regions: a slice must still stay inside one of them.
    std::array<GuestRange, 2> layout{GuestRange{GuestAddress(0x10000), kPageSize},
                                     GuestRange{GuestAddress(0x11000), kPageSize}};
    auto mem = GuestMemory::create(layout);
    REQUIRE(mem.has_value());
    return std::move(mem).value();
}

}  // namespace

TEST_CASE("slice must lie inside one region", "[memory][slice]") {
    GuestMemory mem = make();
    auto s = mem.slice(GuestAddress(0x10f00), 0x100);
    REQUIRE(s.has_value());
    CHECK(s->address() == GuestAddress(0x10f00));
    CHECK(s->size() == 0x100);
    CHECK(s->as_iovec().iov_len == 0x100);

    auto crossing = mem.slice(GuestAddress(0x10f00), 0x101);
    REQUIRE_FALSE(crossing.has_value());
    CHECK_THAT(crossing.error().message(), Catch::Contains("0x10f00"));
    CHECK_FALSE(mem.slice(GuestAddress(0xf000), 0x10).has_value());   // below RAM
    CHECK_FALSE(mem.slice(GuestAddress(0x12000), 0).has_value());     // past the end
    CHECK(mem.slice(GuestAddress(0x11000), kPageSize).has_value());
}

TEST_CASE("slice iovec and copies alias guest memory", "[memory][slice]") {
    GuestMemory mem = make();
    auto s = mem.slice(GuestAddress(0x11010), 8).value();
    std::array<std::byte, 8> in{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4},
                                std::byte{5}, std::byte{6}, std::byte{7}, std::byte{8}};
    s.copy_from(in);
    CHECK(mem.read_obj<uint8_t>(GuestAddress(0x11017)).value() == 8);
    REQUIRE(mem.write_obj<uint8_t>(GuestAddress(0x11010), 0x99).has_value());
    std::array<std::byte, 8> out{};
    s.copy_to(out);
    CHECK(out[0] == std::byte{0x99});
    CHECK(out[7] == std::byte{8});
    auto* base = static_cast<std::byte*>(s.as_iovec().iov_base);
    CHECK(base[1] == std::byte{2});
}

TEST_CASE("slice copies never go past the window", "[memory][slice]") {
    GuestMemory mem = make();
    REQUIRE(mem.fill(GuestAddress(0x10000), kPageSize, std::byte{0x55}).has_value());
    auto s = mem.slice(GuestAddress(0x10000), 4).value();
    std::vector<std::byte> big(16, std::byte{0xaa});
    s.copy_from(big);
    CHECK(mem.read_obj<uint32_t>(GuestAddress(0x10000)).value() == 0xaaaaaaaa);
    CHECK(mem.read_obj<uint8_t>(GuestAddress(0x10004)).value() == 0x55);

    std::vector<std::byte> out(16, std::byte{0});
    s.copy_to(out);
    CHECK(out[3] == std::byte{0xaa});
    CHECK(out[4] == std::byte{0});

    std::vector<std::byte> small(2);
    s.copy_to(small);
    CHECK(small[1] == std::byte{0xaa});
}

TEST_CASE("subslice is bounds- and overflow-checked", "[memory][slice]") {
    GuestMemory mem = make();
    auto s = mem.slice(GuestAddress(0x10100), 0x40).value();
    auto sub = s.subslice(0x10, 0x30);
    REQUIRE(sub.has_value());
    CHECK(sub->address() == GuestAddress(0x10110));
    CHECK(sub->size() == 0x30);
    CHECK(static_cast<std::byte*>(sub->as_iovec().iov_base) ==
          static_cast<std::byte*>(s.as_iovec().iov_base) + 0x10);
    CHECK(s.subslice(0x40, 0).has_value());
    CHECK_FALSE(s.subslice(0x10, 0x31).has_value());
    CHECK_FALSE(s.subslice(0x41, 0).has_value());
    CHECK_FALSE(s.subslice(1, UINT64_MAX).has_value());
    CHECK_FALSE(s.subslice(UINT64_MAX, 2).has_value());
}
