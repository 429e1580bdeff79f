#include "devices/legacy/serial.h"

#include <catch2/catch.hpp>

#include <array>
#include <string>
#include <vector>

#include "../fake_interrupt_line.h"

using vmm::devices::Serial8250;
using vmm::devices::test::FakeInterruptLine;
using vmm::devices::test::read_byte;
using vmm::devices::test::write_byte;

namespace {

constexpr uint64_t kData = 0, kIer = 1, kIir = 2, kFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                   kScr = 7;

struct Fixture {
    std::shared_ptr<FakeInterruptLine> irq = std::make_shared<FakeInterruptLine>();
    std::string out;
    Serial8250 uart{irq, [this](std::span<const std::byte> bytes) {
                        for (auto b : bytes) out.push_back(static_cast<char>(b));
                    }};
};

std::vector<std::byte> bytes_of(const std::string& s) {
    std::vector<std::byte> v;
    for (char c : s) v.push_back(static_cast<std::byte>(c));
    return v;
}

}  // namespace

TEST_CASE("serial transmits THR bytes to the output", "[serial]") {
    Fixture f;
    for (char c : std::string("hi\n")) write_byte(f.uart, kData, static_cast<uint8_t>(c));
    CHECK(f.out == "hi\n");
    CHECK(f.irq->count() == 0);  // THRI is off

    // An empty output function discards without crashing.
    Serial8250 silent(f.irq, {});
    write_byte(silent, kData, 'x');
}

TEST_CASE("serial raises THRE on write and IIR read clears it", "[serial]") {
    Fixture f;
    CHECK(read_byte(f.uart, kIir) == 0x01);  // no interrupt, FIFOs off

    write_byte(f.uart, kIer, 0x02);  // enabling THRI while THR is empty asserts THRE
    CHECK(f.irq->count() == 1);
    CHECK(read_byte(f.uart, kIir) == 0x02);
    CHECK(read_byte(f.uart, kIir) == 0x01);  // the read acknowledged it

    write_byte(f.uart, kData, 'a');
    CHECK(f.irq->count() == 2);
    CHECK(read_byte(f.uart, kIir) == 0x02);
    CHECK(read_byte(f.uart, kIir) == 0x01);

    // Re-enabling THRI re-asserts it, as Linux's UART_BUG_THRE test expects.
    write_byte(f.uart, kIer, 0x00);
    write_byte(f.uart, kIer, 0x02);
    CHECK(f.irq->count() == 3);
    CHECK(read_byte(f.uart, kIir) == 0x02);
}

TEST_CASE("serial reports RDA above THRE", "[serial]") {
    Fixture f;
    write_byte(f.uart, kFcr, 0x01);  // FIFOs on: IIR bits 7..6 set
    write_byte(f.uart, kIer, 0x03);
    f.irq->reset();
    REQUIRE(f.uart.enqueue_input(bytes_of("ab")) == 2);
    CHECK(f.irq->count() == 1);

    CHECK(read_byte(f.uart, kIir) == 0xc4);  // RDA, THRE still pending below it
    CHECK(read_byte(f.uart, kIir) == 0xc4);  // reading IIR does not clear RDA
    CHECK(read_byte(f.uart, kData) == 'a');
    CHECK(read_byte(f.uart, kData) == 'b');
    CHECK(read_byte(f.uart, kIir) == 0xc2);  // now THRE
    CHECK(read_byte(f.uart, kIir) == 0xc1);
}

TEST_CASE("serial input FIFO is bounded and raises RDI", "[serial]") {
    Fixture f;
    std::string big(100, 'z');
    // RDI disabled: data is accepted but no interrupt.
    CHECK(f.uart.enqueue_input(bytes_of(big)) == Serial8250::kInputCapacity);
    CHECK(f.irq->count() == 0);
    CHECK_FALSE(f.uart.input_space_available());
    CHECK(f.uart.enqueue_input(bytes_of("x")) == 0);

    CHECK((read_byte(f.uart, kLsr) & 0x01) == 0x01);
    CHECK(read_byte(f.uart, kData) == 'z');
    CHECK(f.uart.input_space_available());
    CHECK(f.uart.enqueue_input(bytes_of("xy")) == 1);

    // Enabling RDI with data waiting raises the interrupt.
    write_byte(f.uart, kIer, 0x01);
    CHECK(f.irq->count() == 1);
    CHECK(read_byte(f.uart, kIir) == 0x04);

    // Drain: the last byte is the one accepted after the first read.
    uint8_t last = 0;
    for (size_t i = 0; i < Serial8250::kInputCapacity; ++i) last = read_byte(f.uart, kData);
    CHECK(last == 'x');
    CHECK((read_byte(f.uart, kLsr) & 0x01) == 0);
    CHECK(read_byte(f.uart, kIir) == 0x01);

    CHECK(f.uart.enqueue_input(bytes_of("q")) == 1);
    CHECK(f.irq->count() == 2);

    // FCR "clear receive FIFO" drops waiting input.
    write_byte(f.uart, kFcr, 0x03);
    CHECK((read_byte(f.uart, kLsr) & 0x01) == 0);
}

TEST_CASE("serial LSR reports THRE and TEMT always, DR with data", "[serial]") {
    Fixture f;
    CHECK(read_byte(f.uart, kLsr) == 0x60);
    REQUIRE(f.uart.enqueue_input(bytes_of("k")) == 1);
    CHECK(read_byte(f.uart, kLsr) == 0x61);
    read_byte(f.uart, kData);
    CHECK(read_byte(f.uart, kLsr) == 0x60);
}

TEST_CASE("serial divisor latch does not transmit", "[serial]") {
    Fixture f;
    write_byte(f.uart, kLcr, 0x83);  // DLAB
    write_byte(f.uart, kData, 0x01);  // DLL: 115200 baud
    write_byte(f.uart, kIer, 0x00);   // DLM
    CHECK(read_byte(f.uart, kData) == 0x01);
    CHECK(read_byte(f.uart, kIer) == 0x00);
    write_byte(f.uart, kLcr, 0x03);
    CHECK(f.out.empty());
    CHECK(read_byte(f.uart, kIer) == 0x00);  // IER untouched by the DLM write
    write_byte(f.uart, kData, 'x');
    CHECK(f.out == "x");
    write_byte(f.uart, kLcr, 0x83);
    CHECK(read_byte(f.uart, kData) == 0x01);  // latch kept
}

TEST_CASE("serial loopback echoes THR into the receive FIFO", "[serial]") {
    Fixture f;
    write_byte(f.uart, kIer, 0x01);
    write_byte(f.uart, kMcr, 0x10);
    write_byte(f.uart, kData, 0x5a);
    CHECK(f.out.empty());
    CHECK(f.irq->count() == 1);
    CHECK(read_byte(f.uart, kLsr) == 0x61);
    CHECK(read_byte(f.uart, kData) == 0x5a);

    write_byte(f.uart, kMcr, 0x00);
    write_byte(f.uart, kData, 0x41);
    CHECK(f.out == "A");
    CHECK((read_byte(f.uart, kLsr) & 0x01) == 0);
}

TEST_CASE("serial survives Linux's autoconfig probe", "[serial]") {
    Fixture f;
    // Existence test: IER reads back what was written, masked to 0x0f.
    uint8_t saved_ier = read_byte(f.uart, kIer);
    write_byte(f.uart, kIer, 0);
    CHECK((read_byte(f.uart, kIer) & 0x0f) == 0);
    write_byte(f.uart, kIer, 0x0f);
    CHECK((read_byte(f.uart, kIer) & 0x0f) == 0x0f);
    write_byte(f.uart, kIer, saved_ier);

    // Scratch register.
    write_byte(f.uart, kScr, 0xa5);
    CHECK(read_byte(f.uart, kScr) == 0xa5);
    write_byte(f.uart, kScr, 0x5a);
    CHECK(read_byte(f.uart, kScr) == 0x5a);

    // Loopback MSR test.
    uint8_t saved_mcr = read_byte(f.uart, kMcr);
    write_byte(f.uart, kMcr, 0x10 | 0x0a);
    CHECK((read_byte(f.uart, kMsr) & 0xf0) == 0x90);  // DCD | CTS
    write_byte(f.uart, kMcr, 0x1f);
    CHECK((read_byte(f.uart, kMsr) & 0xf0) == 0xf0);
    write_byte(f.uart, kMcr, saved_mcr);
    CHECK((read_byte(f.uart, kMsr) & 0xb0) == 0xb0);  // a peer is attached again

    // FIFO detection: 16550A reports both IIR FIFO bits, and no 64-byte FIFO.
    write_byte(f.uart, kLcr, 0xbf);
    write_byte(f.uart, kFcr, 0);  // EFR on enhanced parts
    write_byte(f.uart, kLcr, 0);
    write_byte(f.uart, kFcr, 0x01);
    CHECK(read_byte(f.uart, kIir) >> 6 == 3);
    write_byte(f.uart, kFcr, 0x21);
    CHECK((read_byte(f.uart, kIir) & 0xe0) == 0xc0);
    // IER bit 6 (UUE) must not stick, or Linux takes it for an XScale UART.
    write_byte(f.uart, kIer, 0x40);
    CHECK((read_byte(f.uart, kIer) & 0x40) == 0);

    CHECK(f.out.empty());
}

TEST_CASE("serial accesses wider than a byte use the first byte", "[serial]") {
    Fixture f;
    std::array<std::byte, 4> word{std::byte{'w'}, std::byte{'x'}, std::byte{'y'}, std::byte{'z'}};
    f.uart.write(kData, word);
    CHECK(f.out == "w");
    std::array<std::byte, 2> wide{std::byte{0xff}, std::byte{0xff}};
    f.uart.read(kLsr, wide);
    CHECK(wide[0] == std::byte{0x60});
    CHECK(wide[1] == std::byte{0});
    CHECK(read_byte(f.uart, 9) == 0);  // beyond the register file
}
