#include "devices/legacy/i8042.h"

#include <catch2/catch.hpp>

#include <array>
#include <vector>

#include "../fake_interrupt_line.h"

using vmm::devices::I8042;
using vmm::devices::test::FakeInterruptLine;
using vmm::devices::test::read_byte;
using vmm::devices::test::write_byte;

namespace {

constexpr uint64_t kData = I8042::kDataOffset;
constexpr uint64_t kCmd = I8042::kCommandOffset;

struct Fixture {
    std::shared_ptr<FakeInterruptLine> irq = std::make_shared<FakeInterruptLine>();
    int resets = 0;
    I8042 kbd{irq, [this] { ++resets; }};

    bool output_full() { return (read_byte(kbd, kCmd) & I8042::kStatusOutputFull) != 0; }
};

}  // namespace

TEST_CASE("i8042 pulses reset on command 0xFE", "[i8042]") {
    Fixture f;
    write_byte(f.kbd, kCmd, 0xfe);
    CHECK(f.resets == 1);
    write_byte(f.kbd, kData, 0xfe);  // on the data port it is a keyboard byte, not a reset
    CHECK(f.resets == 1);

    I8042 no_callback(f.irq, {});
    write_byte(no_callback, kCmd, 0xfe);  // no crash without a callback
}

TEST_CASE("i8042 reads and writes the controller configuration byte", "[i8042]") {
    Fixture f;
    CHECK_FALSE(f.output_full());
    write_byte(f.kbd, kCmd, 0x20);
    REQUIRE(f.output_full());
    const uint8_t initial = read_byte(f.kbd, kData);
    CHECK((initial & I8042::kCtrKbdInterrupt) != 0);
    CHECK_FALSE(f.output_full());

    write_byte(f.kbd, kCmd, 0x60);
    CHECK((read_byte(f.kbd, kCmd) & I8042::kStatusCommandData) != 0);
    write_byte(f.kbd, kData, 0x44);
    CHECK((read_byte(f.kbd, kCmd) & I8042::kStatusCommandData) == 0);
    CHECK_FALSE(f.output_full());  // the argument was not taken as a keyboard byte
    write_byte(f.kbd, kCmd, 0x20);
    CHECK(read_byte(f.kbd, kData) == 0x44);

    // 0xAD / 0xAE toggle the keyboard-disable bit.
    write_byte(f.kbd, kCmd, 0xad);
    write_byte(f.kbd, kCmd, 0x20);
    CHECK((read_byte(f.kbd, kData) & I8042::kCtrKbdDisabled) != 0);
    write_byte(f.kbd, kCmd, 0xae);
    write_byte(f.kbd, kCmd, 0x20);
    CHECK((read_byte(f.kbd, kData) & I8042::kCtrKbdDisabled) == 0);
    CHECK(f.irq->count() == 0);  // controller replies are polled, not interrupts
}

TEST_CASE("i8042 self test, output port and keyboard ACK", "[i8042]") {
    Fixture f;
    write_byte(f.kbd, kCmd, 0xaa);
    CHECK(read_byte(f.kbd, kData) == 0x55);

    write_byte(f.kbd, kCmd, 0xd1);
    write_byte(f.kbd, kData, 0x03);
    write_byte(f.kbd, kCmd, 0xd0);
    CHECK(read_byte(f.kbd, kData) == 0x03);

    write_byte(f.kbd, kData, 0xf4);  // keyboard "enable scanning"
    CHECK(f.irq->count() == 1);
    CHECK(read_byte(f.kbd, kData) == 0xfa);
    CHECK(read_byte(f.kbd, kData) == 0);  // empty buffer reads zero
}

TEST_CASE("i8042 Ctrl+Alt+Del queues scan codes and raises IRQ 1", "[i8042]") {
    Fixture f;
    REQUIRE(f.kbd.trigger_ctrl_alt_del());
    CHECK(f.irq->count() == 1);
    std::vector<uint8_t> codes;
    while (f.output_full()) codes.push_back(read_byte(f.kbd, kData));
    CHECK(codes == std::vector<uint8_t>{0x14, 0x11, 0xe0, 0x71});
    CHECK(f.irq->count() == 4);  // re-raised while bytes remained

    // With keyboard interrupts masked in the CTR, codes queue silently.
    write_byte(f.kbd, kCmd, 0x60);
    write_byte(f.kbd, kData, 0x04);
    f.irq->reset();
    REQUIRE(f.kbd.trigger_ctrl_alt_del());
    CHECK(f.irq->count() == 0);
    CHECK(f.output_full());

    // The buffer is bounded.
    int accepted = 1;
    while (f.kbd.trigger_ctrl_alt_del()) ++accepted;
    CHECK(accepted == static_cast<int>(I8042::kBufferSize / 4));
}

TEST_CASE("i8042 ignores wide accesses", "[i8042]") {
    Fixture f;
    std::array<std::byte, 2> wide{std::byte{0xfe}, std::byte{0}};
    f.kbd.write(kCmd, wide);
    CHECK(f.resets == 0);
    f.kbd.read(kCmd, wide);
    CHECK(wide[0] == std::byte{0});
}
