#include "devices/legacy/debug_port.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "../fake_interrupt_line.h"

using vmm::devices::DebugPort;
using vmm::devices::test::read_byte;
using vmm::devices::test::write_byte;

TEST_CASE("debug port records codes with non-decreasing times", "[debug_port]") {
    const auto start = std::chrono::steady_clock::now() - std::chrono::milliseconds(5);
    DebugPort port(start);
    write_byte(port, 0, 0x40);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    write_byte(port, 0, 0x41);

    const auto codes = port.codes();
    REQUIRE(codes.size() == 2);
    CHECK(codes[0].first == 0x40);
    CHECK(codes[1].first == 0x41);
    CHECK(codes[0].second >= 5.0);  // measured from `start`, not from construction
    CHECK(codes[1].second >= codes[0].second + 2.0);
    CHECK(read_byte(port, 0) == 0);
}

TEST_CASE("debug port bounds its record and counts the rest", "[debug_port]") {
    DebugPort port(std::chrono::steady_clock::now());
    for (size_t i = 0; i < DebugPort::kMaxRecorded + 10; ++i) write_byte(port, 0, static_cast<uint8_t>(i));
    const auto codes = port.codes();
    REQUIRE(codes.size() == DebugPort::kMaxRecorded);
    CHECK(port.dropped() == 10);
    for (size_t i = 1; i < codes.size(); ++i) CHECK(codes[i].second >= codes[i - 1].second);
    CHECK(codes.back().first == static_cast<uint8_t>(DebugPort::kMaxRecorded - 1));
}
