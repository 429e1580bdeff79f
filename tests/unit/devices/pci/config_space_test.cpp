// Configuration-space emulation: BAR sizing, masks and capability lists.
#include "devices/pci/config_space.h"

#include <catch2/catch.hpp>

using namespace vmm::devices::pci;

TEST_CASE("BAR sizing follows from the write masks", "[pci][config]") {
    ConfigSpace c(0x1234, 0x5678, 0x020000);
    REQUIRE(c.add_bar(0, BarKind::Memory32, 0x4000).has_value());
    REQUIRE(c.add_bar(1, BarKind::Io, 0x20).has_value());
    REQUIRE(c.add_bar(2, BarKind::Memory64, 0x2'0000'0000ull, true).has_value());

    for (uint16_t off = kBar0; off < kBar0 + 24; off += 4) c.write(off, 4, 0xffffffff);
    CHECK(c.read(kBar0, 4) == 0xffffc000u);         // 16 KiB, 32-bit, non-prefetchable
    CHECK(c.read(kBar0 + 4, 4) == 0xffffffe1u);     // 32 bytes of I/O
    CHECK(c.read(kBar0 + 8, 4) == 0x0000000cu);     // 8 GiB: no low address bits, 64-bit prefetchable
    CHECK(c.read(kBar0 + 12, 4) == 0xfffffffeu);    // upper dword: 8 GiB mask
    CHECK(c.read(kBar0 + 16, 4) == 0u);             // unimplemented BARs read zero
    CHECK(c.read(kBar0 + 20, 4) == 0u);
}

TEST_CASE("programmed BAR addresses are reported, 64-bit ones whole", "[pci][config]") {
    ConfigSpace c(0x1234, 0x5678, 0x020000);
    REQUIRE(c.add_bar(0, BarKind::Memory64, 0x10000).has_value());
    REQUIRE(c.add_bar(2, BarKind::Io, 0x10).has_value());
    c.write(kBar0, 4, 0xfe012345);  // low bits below the size are dropped
    c.write(kBar0 + 4, 4, 0x00000001);
    c.write(kBar0 + 8, 4, 0xc05f);
    CHECK(c.bar_address(0) == 0x1'fe01'0000ull);
    CHECK(c.bar_address(2) == 0xc050u);
    auto bars = c.bars();
    REQUIRE(bars.size() == 2);
    CHECK(bars[0].kind == BarKind::Memory64);
    CHECK(bars[0].address == 0x1'fe01'0000ull);
    CHECK(bars[1].kind == BarKind::Io);
    CHECK(bars[1].size == 0x10);
}

TEST_CASE("bad BAR descriptions are refused", "[pci][config]") {
    ConfigSpace c(1, 2, 0);
    CHECK_FALSE(c.add_bar(6, BarKind::Memory32, 0x1000).has_value());
    CHECK_FALSE(c.add_bar(5, BarKind::Memory64, 0x1000).has_value());
    CHECK_FALSE(c.add_bar(0, BarKind::Memory32, 0x3000).has_value());
    CHECK_FALSE(c.add_bar(0, BarKind::Memory32, 8).has_value());
    CHECK_FALSE(c.add_bar(0, BarKind::Io, 0x200).has_value());
    REQUIRE(c.add_bar(0, BarKind::Memory64, 0x1000).has_value());
    auto again = c.add_bar(1, BarKind::Memory32, 0x1000);
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().message() == "BAR 1 is already in use");
}

TEST_CASE("IDs and class are read-only; command keeps only its writable bits", "[pci][config]") {
    ConfigSpace c(0x1af4, 0x1041, 0x020000, 1);
    c.write(kVendorId, 4, 0);
    c.write(kClassRevision, 4, 0);
    CHECK(c.read(kVendorId, 2) == 0x1af4);
    CHECK(c.read(kDeviceId, 2) == 0x1041);
    CHECK(c.read(kClassRevision, 4) == 0x02000001u);
    c.write(kCommand, 2, 0xffff);
    CHECK(c.command() == (kCommandIo | kCommandMemory | kCommandBusMaster | kCommandIntxDisable));
    c.write(kInterruptLine, 1, 0x0b);
    CHECK(c.read(kInterruptLine, 1) == 0x0b);
}

TEST_CASE("capabilities are linked and walked", "[pci][config]") {
    ConfigSpace c(1, 2, 0);
    CHECK(c.read(kStatus, 2) == 0);
    uint8_t msix_body[10] = {0x0f, 0x00, 0x02, 0, 0, 0, 0x02, 0x20, 0, 0};
    uint8_t msix_mask[10] = {0x00, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0};
    auto first = c.add_capability(kCapIdMsix, msix_body, msix_mask);
    REQUIRE(first.has_value());
    uint8_t vendor_body[2] = {4, 0};
    auto second = c.add_capability(0x09, vendor_body);
    REQUIRE(second.has_value());
    CHECK(*first == 0x40);
    CHECK(*second == 0x4c);
    CHECK((c.read(kStatus, 2) & kStatusCapabilities) != 0);
    auto caps = c.capabilities();
    REQUIRE(caps.size() == 2);
    CHECK(caps[0].id == kCapIdMsix);
    CHECK(caps[1].offset == 0x4c);
    // Only the MSI-X enable / function-mask bits are writable.
    c.write(0x42, 2, 0xffff);
    CHECK(c.read(0x42, 2) == 0xc00f);
}

TEST_CASE("capability walking survives loops and wild pointers", "[pci][config]") {
    std::array<uint8_t, 256> bytes{};
    auto read8 = [&](uint16_t off) { return off < bytes.size() ? bytes[off] : uint8_t{0xff}; };
    bytes[kCapabilityPointer] = 0x40;
    bytes[0x40] = 0x05;
    bytes[0x41] = 0x50;
    bytes[0x50] = 0x11;
    bytes[0x51] = 0x40;  // back to the first: a loop
    auto caps = walk_capabilities(read8);
    CHECK(caps.size() == 2);
    bytes[0x51] = 0x10;  // into the header: end of list
    CHECK(walk_capabilities(read8).size() == 2);
    bytes[kCapabilityPointer] = 0x00;
    CHECK(walk_capabilities(read8).empty());
}

TEST_CASE("capabilities that do not fit are refused", "[pci][config]") {
    ConfigSpace c(1, 2, 0);
    std::vector<uint8_t> big(180, 0);
    REQUIRE(c.add_capability(0x09, big).has_value());
    auto full = c.add_capability(0x09, big);
    REQUIRE_FALSE(full.has_value());
    CHECK(full.error().message().find("no room") != std::string::npos);
}
