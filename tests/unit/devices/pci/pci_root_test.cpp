// The host bridge on bus 0: mechanism #1 (0xCF8/0xCFC) and ECAM reach the same
// functions; anything absent or malformed answers all-ones.
#include "devices/pci/pci_root.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

using namespace vmm::devices::pci;

namespace {

class FakeFunction final : public PciDevice {
public:
    FakeFunction() : config(0x1234, 0xabcd, 0x010802) { REQUIRE(config.add_bar(0, BarKind::Memory32, 0x1000).has_value()); }
    uint32_t config_read(uint16_t offset, uint8_t size) override {
        REQUIRE(offset % size == 0);
        REQUIRE(offset + size <= kConfigSpaceSize);
        return config.read(offset, size);
    }
    void config_write(uint16_t offset, uint8_t size, uint32_t value) override {
        REQUIRE(offset % size == 0);
        REQUIRE(offset + size <= kConfigSpaceSize);
        config.write(offset, size, value);
    }
    std::vector<BarInfo> bars() const override { return config.bars(); }
    ConfigSpace config;
};

uint32_t cf8(uint8_t bus, uint8_t slot, uint8_t fn, uint8_t reg) {
    return 0x80000000u | uint32_t{bus} << 16 | uint32_t{slot} << 11 | uint32_t{fn} << 8 | reg;
}

uint64_t bus_read(vmm::devices::BusDevice& dev, uint64_t offset, size_t size) {
    std::vector<std::byte> data(size);
    dev.read(offset, data);
    uint64_t v = 0;
    std::memcpy(&v, data.data(), size);
    return v;
}

void bus_write(vmm::devices::BusDevice& dev, uint64_t offset, size_t size, uint64_t v) {
    std::vector<std::byte> data(size);
    std::memcpy(data.data(), &v, size);
    dev.write(offset, data);
}

uint64_t ecam(uint8_t slot, uint16_t reg) { return uint64_t{slot} << 15 | reg; }

}  // namespace

TEST_CASE("the host bridge sits at 00:00.0 and empty slots read all-ones", "[pci][root]") {
    auto root = std::make_shared<PciRoot>();
    PciConfigIo io(root);
    bus_write(io, 0, 4, cf8(0, 0, 0, 0));
    CHECK(bus_read(io, 4, 4) == 0x00081b36u);
    bus_write(io, 0, 4, cf8(0, 0, 0, 0x08));
    CHECK(bus_read(io, 4, 4) >> 8 == 0x060000u);
    CHECK(bus_read(io, 0, 4) == cf8(0, 0, 0, 0x08));  // the address latch reads back
    bus_write(io, 0, 4, cf8(0, 5, 0, 0));
    CHECK(bus_read(io, 4, 4) == 0xffffffffu);
    CHECK(bus_read(io, 4, 2) == 0xffffu);
    bus_write(io, 0, 4, cf8(1, 0, 0, 0));  // no bus 1
    CHECK(bus_read(io, 4, 4) == 0xffffffffu);
    bus_write(io, 0, 4, cf8(0, 0, 3, 0));  // single-function devices only
    CHECK(bus_read(io, 4, 4) == 0xffffffffu);
    bus_write(io, 0, 4, cf8(0, 0, 0, 0) & 0x7fffffffu);  // enable bit clear
    CHECK(bus_read(io, 4, 4) == 0xffffffffu);
}

TEST_CASE("mechanism #1 and ECAM reach the same function", "[pci][root]") {
    auto root = std::make_shared<PciRoot>();
    auto fn = std::make_shared<FakeFunction>();
    auto slot = root->attach(fn);
    REQUIRE(slot.has_value());
    CHECK(*slot == 1);
    PciConfigIo io(root);
    PciEcam mm(root);

    // Size BAR0 through 0xCF8/0xCFC, program it through ECAM, read it back both ways.
    bus_write(io, 0, 4, cf8(0, 1, 0, kBar0));
    bus_write(io, 4, 4, 0xffffffff);
    CHECK(bus_read(io, 4, 4) == 0xfffff000u);
    bus_write(mm, ecam(1, kBar0), 4, 0xfebf0000);
    CHECK(bus_read(io, 4, 4) == 0xfebf0000u);
    CHECK(fn->bars().at(0).address == 0xfebf0000u);

    // Byte and word accesses through 0xCFC + n.
    bus_write(io, 0, 4, cf8(0, 1, 0, 0));
    CHECK(bus_read(io, 6, 2) == 0xabcd);
    CHECK(bus_read(io, 5, 1) == 0x12);
    CHECK(bus_read(mm, ecam(1, 2), 2) == 0xabcd);
    CHECK(bus_read(mm, ecam(1, 0xb), 1) == 0x01);
}

TEST_CASE("unaligned, oversized and out-of-range accesses answer all-ones", "[pci][root]") {
    auto root = std::make_shared<PciRoot>();
    auto fn = std::make_shared<FakeFunction>();
    REQUIRE(root->attach(fn, 3).has_value());
    PciEcam mm(root);
    PciConfigIo io(root);
    CHECK(bus_read(mm, ecam(3, 1), 2) == 0xffffu);       // unaligned word
    CHECK(bus_read(mm, ecam(3, 2), 4) == 0xffffffffu);   // unaligned dword
    CHECK(bus_read(mm, ecam(3, 0), 8) == ~0ull);         // 8-byte config access
    CHECK(bus_read(mm, kEcamBusSize + 4, 4) == 0xffffffffu);
    // Unaligned write: dropped (the command register stays clear).
    bus_write(mm, ecam(3, kCommand + 1), 2, 0xffff);
    CHECK(fn->config.command() == 0);
    // Mechanism #1 reaches only the first 256 bytes; ECAM reaches 4 KiB.
    CHECK(bus_read(mm, ecam(3, 0xffc), 4) == 0u);
    // Every offset and size, both paths: no crash, and the fake's REQUIREs hold.
    for (uint64_t off = 0; off < 0x8000 * 4; off += 3)
        for (size_t size : {1, 2, 4, 8}) {
            (void)bus_read(mm, off, size);
            bus_write(mm, off, size, ~0ull);
        }
    for (uint32_t reg = 0; reg < 256; ++reg) {
        bus_write(io, 0, 4, cf8(0, 3, 0, static_cast<uint8_t>(reg)));
        for (uint64_t off = 0; off < 8; ++off)
            for (size_t size : {1, 2, 4}) (void)bus_read(io, off, size);
    }
}

TEST_CASE("attach checks slots", "[pci][root]") {
    PciRoot root;
    CHECK_FALSE(root.attach(std::make_shared<FakeFunction>(), 0).has_value());
    CHECK_FALSE(root.attach(std::make_shared<FakeFunction>(), 32).has_value());
    REQUIRE(root.attach(std::make_shared<FakeFunction>(), 7).has_value());
    auto taken = root.attach(std::make_shared<FakeFunction>(), 7);
    REQUIRE_FALSE(taken.has_value());
    CHECK(taken.error().message() == "PCI slot 7 is already taken");
    for (int i = 0; i < 30; ++i) REQUIRE(root.attach(std::make_shared<FakeFunction>()).has_value());
    auto full = root.attach(std::make_shared<FakeFunction>());
    REQUIRE_FALSE(full.has_value());
    CHECK(full.error().message().find("full") != std::string::npos);
}
