#include "vmm/boot/e820.h"

#include <catch2/catch.hpp>
#include <ostream>

#include "memory/x86_64_layout.h"

using namespace vmm;
using boot::E820Entry;
using memory::x86_64::GiB;
using memory::x86_64::KiB;
using memory::x86_64::MiB;

namespace vmm::boot {
std::ostream& operator<<(std::ostream& os, const E820Entry& e) {
    return os << "{" << std::hex << "0x" << e.addr << ", 0x" << e.size << ", " << e.type << "}";
}
}  // namespace vmm::boot

namespace {

memory::GuestMemory make_memory(uint64_t size) {
    auto layout = memory::x86_64::ram_layout(size);
    auto mem = memory::GuestMemory::create(layout);
    REQUIRE(mem.has_value());
    return std::move(mem).value();
}

constexpr uint32_t kRam = 1;
constexpr uint32_t kReserved = 2;
const E820Entry kLowRam{0, 0x9fc00, kRam};
const E820Entry kMptable{0x9fc00, 0x400, kReserved};
const E820Entry kBios{0xf0000, 0x10000, kReserved};
const E820Entry kEcam{0xe0000000, 256 * MiB, kReserved};

// Invariants every map must hold: sorted, non-overlapping, and every RAM entry
// really is guest RAM.
void check_invariants(const memory::GuestMemory& mem, const std::vector<E820Entry>& map) {
    for (size_t i = 0; i < map.size(); ++i) {
        CHECK(map[i].size > 0);
        if (i > 0) CHECK(map[i - 1].addr + map[i - 1].size <= map[i].addr);
        if (map[i].type == kRam) {
            CHECK(mem.contains(memory::GuestAddress(map[i].addr), map[i].size));
        }
    }
}

}  // namespace

TEST_CASE("e820 for 512 MiB", "[boot]") {
    auto mem = make_memory(512 * MiB);
    auto map = boot::build_e820(mem);
    std::vector<E820Entry> want{kLowRam, kMptable, kBios, {1 * MiB, 511 * MiB, kRam}, kEcam};
    CHECK(map == want);
    check_invariants(mem, map);
}

TEST_CASE("e820 for exactly 3 GiB has no high RAM", "[boot]") {
    auto mem = make_memory(3 * GiB);
    auto map = boot::build_e820(mem);
    std::vector<E820Entry> want{kLowRam, kMptable, kBios, {1 * MiB, 3 * GiB - 1 * MiB, kRam},
                                kEcam};
    CHECK(map == want);
    check_invariants(mem, map);
}

TEST_CASE("e820 for 5 GiB puts 2 GiB above 4 GiB", "[boot]") {
    auto mem = make_memory(5 * GiB);
    auto map = boot::build_e820(mem);
    std::vector<E820Entry> want{kLowRam, kMptable, kBios, {1 * MiB, 3 * GiB - 1 * MiB, kRam},
                                kEcam, {4 * GiB, 2 * GiB, kRam}};
    CHECK(map == want);
    check_invariants(mem, map);
    uint64_t ram = 0;
    for (const auto& e : map) ram += e.type == kRam ? e.size : 0;
    // All RAM except the MP table page, the VGA hole and the BIOS area is usable.
    CHECK(ram == mem.total_size() - (1 * MiB - 0x9fc00));
}

TEST_CASE("e820 for tiny guests lists only what exists", "[boot]") {
    SECTION("512 KiB") {
        auto mem = make_memory(512 * KiB);
        auto map = boot::build_e820(mem);
        CHECK(map == std::vector<E820Entry>{{0, 512 * KiB, kRam}, kEcam});
    }
    SECTION("exactly 1 MiB: no RAM above 1 MiB") {
        auto mem = make_memory(1 * MiB);
        auto map = boot::build_e820(mem);
        CHECK(map == std::vector<E820Entry>{kLowRam, kMptable, kBios, kEcam});
    }
    SECTION("1 MiB + 4 KiB") {
        auto mem = make_memory(1 * MiB + 4 * KiB);
        auto map = boot::build_e820(mem);
        CHECK(map == std::vector<E820Entry>{kLowRam, kMptable, kBios, {1 * MiB, 4 * KiB, kRam},
                                            kEcam});
        check_invariants(mem, map);
    }
}
