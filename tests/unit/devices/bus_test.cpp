#include "devices/bus.h"

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <limits>
#include <vector>

using vmm::devices::Bus;
using vmm::devices::BusDevice;

namespace {

// Records every access and answers reads with its id in every byte.
class RecordingDevice final : public BusDevice {
public:
    explicit RecordingDevice(uint8_t id) : m_id(id) {}
    void read(uint64_t offset, std::span<std::byte> data) override {
        reads.push_back({offset, data.size()});
        for (auto& b : data) b = std::byte{m_id};
    }
    void write(uint64_t offset, std::span<const std::byte> data) override {
        writes.push_back({offset, data.size()});
        last_written.assign(data.begin(), data.end());
    }
    struct Access {
        uint64_t offset;
        size_t len;
    };
    std::vector<Access> reads;
    std::vector<Access> writes;
    std::vector<std::byte> last_written;

private:
    uint8_t m_id;
};

std::shared_ptr<RecordingDevice> dev(uint8_t id = 1) { return std::make_shared<RecordingDevice>(id); }

}  // namespace

TEST_CASE("bus rejects zero size, wrap-around and null devices", "[bus]") {
    Bus bus;
    CHECK_FALSE(bus.insert(dev(), 0x100, 0));
    CHECK_FALSE(bus.insert(dev(), std::numeric_limits<uint64_t>::max(), 2));
    CHECK_FALSE(bus.insert(dev(), 0xffff'ffff'ffff'f000, 0x2000));
    CHECK_FALSE(bus.insert(nullptr, 0x100, 1));
    // A range that ends exactly at the top of the address space is fine.
    CHECK(bus.insert(dev(), 0xffff'ffff'ffff'f000, 0x1000));
    CHECK(bus.insert(dev(), 0, 1));
}

TEST_CASE("bus rejects every kind of overlap", "[bus]") {
    Bus bus;
    REQUIRE(bus.insert(dev(), 0x100, 0x10));  // [0x100, 0x110)

    SECTION("exact") { CHECK_FALSE(bus.insert(dev(), 0x100, 0x10)); }
    SECTION("same base, smaller") { CHECK_FALSE(bus.insert(dev(), 0x100, 1)); }
    SECTION("partial from the left") { CHECK_FALSE(bus.insert(dev(), 0xf8, 0x9)); }
    SECTION("partial from the right") { CHECK_FALSE(bus.insert(dev(), 0x10f, 0x10)); }
    SECTION("enclosed") { CHECK_FALSE(bus.insert(dev(), 0x104, 0x2)); }
    SECTION("enclosing") { CHECK_FALSE(bus.insert(dev(), 0x80, 0x100)); }
    SECTION("adjacent ranges are allowed") {
        CHECK(bus.insert(dev(), 0xf0, 0x10));
        CHECK(bus.insert(dev(), 0x110, 0x10));
        // Now a range spanning the gap between two neighbours still collides.
        CHECK_FALSE(bus.insert(dev(), 0x10f, 0x2));
    }
}

TEST_CASE("bus passes device-relative offsets", "[bus]") {
    Bus bus;
    auto a = dev(0xa);
    auto b = dev(0xb);
    REQUIRE(bus.insert(a, 0x3f8, 8));
    REQUIRE(bus.insert(b, 0x60, 5));

    std::array<std::byte, 1> one{};
    REQUIRE(bus.read(0x3fd, one));
    CHECK(one[0] == std::byte{0xa});
    REQUIRE(a->reads.size() == 1);
    CHECK(a->reads[0].offset == 5);
    CHECK(a->reads[0].len == 1);

    const std::array<std::byte, 2> two{std::byte{1}, std::byte{2}};
    REQUIRE(bus.write(0x62, two));
    REQUIRE(b->writes.size() == 1);
    CHECK(b->writes[0].offset == 2);
    CHECK(b->last_written == std::vector<std::byte>(two.begin(), two.end()));
    CHECK(a->writes.empty());
}

TEST_CASE("bus misses accesses not fully inside one device", "[bus]") {
    Bus bus;
    auto a = dev(1);
    auto b = dev(2);
    REQUIRE(bus.insert(a, 0x1000, 0x10));
    REQUIRE(bus.insert(b, 0x1010, 0x10));
    std::array<std::byte, 4> four{};

    CHECK_FALSE(bus.read(0x100e, four));   // straddles a and b
    CHECK_FALSE(bus.write(0x101e, four));  // runs past b's end
    CHECK_FALSE(bus.read(0xffe, four));    // starts before a
    CHECK_FALSE(bus.read(0x2000, four));   // nothing there
    CHECK_FALSE(bus.read(std::numeric_limits<uint64_t>::max() - 1, four));
    CHECK_FALSE(bus.read(0x1000, std::span<std::byte>()));  // empty access
    CHECK(a->reads.empty());
    CHECK(b->reads.empty());
    CHECK(b->writes.empty());

    CHECK(bus.read(0x100c, four));  // the last four bytes of a
    REQUIRE(a->reads.size() == 1);
    CHECK(a->reads[0].offset == 0xc);
}

TEST_CASE("bus remove by base frees the range", "[bus]") {
    Bus bus;
    auto a = dev(1);
    REQUIRE(bus.insert(a, 0x500, 0x10));
    std::array<std::byte, 1> one{};
    CHECK(bus.read(0x505, one));

    CHECK_FALSE(bus.remove(0x505));  // not a base
    REQUIRE(bus.remove(0x500));
    CHECK_FALSE(bus.read(0x505, one));
    CHECK_FALSE(bus.remove(0x500));

    auto b = dev(2);
    CHECK(bus.insert(b, 0x508, 0x10));  // the old range no longer blocks it
    CHECK(bus.read(0x508, one));
    CHECK(one[0] == std::byte{2});
}
