#include "devices/virtio/console/console_device.h"

#include <string>

#include "../virtio_test_support.h"

using namespace vmm;
using namespace vmm::devices::virtio;
using namespace vmm::devices::virtio::test;

namespace {

class FakeVirtioInterrupt final : public VirtioInterrupt {
public:
    void signal_used_queue(uint16_t queue_index) override { used.push_back(queue_index); }
    void signal_config_change() override {}
    void set_device_needs_reset() override { ++needs_reset; }
    std::vector<uint16_t> used;
    int needs_reset = 0;
};

std::span<const std::byte> bytes(const std::string& s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}
std::string text(const std::vector<std::byte>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

constexpr uint64_t kRxRingBase = 0x10000;
constexpr uint64_t kTxRingBase = 0x90000;

struct Harness {
    Harness() : device(std::make_shared<ConsoleDevice>([this](std::span<const std::byte> b) {
                    output.append(reinterpret_cast<const char*>(b.data()), b.size());
                })) {
        REQUIRE(device->activate({&mem, {rx.make_queue(), tx.make_queue()}, kFeatureVersion1, irq})
                    .has_value());
    }
    // Posts one receive buffer (not processed yet).
    void post_rx(uint64_t addr, uint32_t len) {
        rx.add_chain({{addr, len, true}});
        rx.publish();
    }

    memory::GuestMemory mem = make_test_memory(4 << 20);
    TestRing rx{mem, 16, kRxRingBase};
    TestRing tx{mem, 16, kTxRingBase};
    std::shared_ptr<FakeVirtioInterrupt> irq = std::make_shared<FakeVirtioInterrupt>();
    std::string output;
    std::shared_ptr<ConsoleDevice> device;
};

constexpr uint64_t kBuf = 0x200000;

}  // namespace

TEST_CASE("virtio-console transmit reaches the sink", "[virtio][console]") {
    Harness h;
    write_guest(h.mem, kBuf, bytes("hello "));
    write_guest(h.mem, kBuf + 0x1000, bytes("world"));
    h.tx.add_chain({{kBuf, 6, false}, {kBuf + 0x1000, 5, false}});
    h.tx.publish();
    h.device->process_queue(ConsoleDevice::kTransmitQueue);
    CHECK(h.output == "hello world");
    REQUIRE(h.tx.used_idx() == 1);
    CHECK(h.tx.used_elem(0).len == 0);
    CHECK(h.irq->used == std::vector<uint16_t>{ConsoleDevice::kTransmitQueue});
    CHECK(h.device->counters()["tx_bytes"] == 11);

    // A buffer larger than the copy chunk arrives whole and in order.
    std::string big(10000, 'x');
    for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    write_guest(h.mem, kBuf, bytes(big));
    h.tx.add_chain({{kBuf, 10000, false}});
    h.tx.publish();
    h.device->process_queue(ConsoleDevice::kTransmitQueue);
    CHECK(h.output == "hello world" + big);
}

TEST_CASE("virtio-console input goes into posted receive buffers", "[virtio][console]") {
    Harness h;
    h.post_rx(kBuf, 64);
    h.device->process_queue(ConsoleDevice::kReceiveQueue);  // nothing to deliver yet
    CHECK(h.rx.used_idx() == 0);
    CHECK(h.device->enqueue_input(bytes("abc")) == 3);
    REQUIRE(h.rx.used_idx() == 1);
    CHECK(h.rx.used_elem(0).len == 3);
    CHECK(text(read_guest(h.mem, kBuf, 3)) == "abc");
    CHECK(h.irq->used == std::vector<uint16_t>{ConsoleDevice::kReceiveQueue});

    // Split across small buffers, in order; the rest waits for the next buffer.
    h.post_rx(kBuf + 0x1000, 2);
    CHECK(h.device->enqueue_input(bytes("wxyz")) == 4);
    REQUIRE(h.rx.used_idx() == 2);
    CHECK(text(read_guest(h.mem, kBuf + 0x1000, 2)) == "wx");
    h.post_rx(kBuf + 0x2000, 8);
    h.device->process_queue(ConsoleDevice::kReceiveQueue);
    REQUIRE(h.rx.used_idx() == 3);
    CHECK(h.rx.used_elem(2).len == 2);
    CHECK(text(read_guest(h.mem, kBuf + 0x2000, 2)) == "yz");
    CHECK(h.device->counters()["rx_bytes"] == 7);
}

TEST_CASE("virtio-console queues input without buffers, bounded", "[virtio][console]") {
    Harness h;
    std::string lots(ConsoleDevice::kInputCapacity + 500, 'q');
    lots[0] = 'A';
    CHECK(h.device->enqueue_input(bytes(lots)) == ConsoleDevice::kInputCapacity);
    CHECK(h.device->input_space() == 0);
    CHECK(h.device->enqueue_input(bytes("more")) == 0);
    CHECK(h.rx.used_idx() == 0);

    h.post_rx(kBuf, 1000);
    h.post_rx(kBuf + 0x1000, 4000);
    h.device->process_queue(ConsoleDevice::kReceiveQueue);
    REQUIRE(h.rx.used_idx() == 2);
    CHECK(h.rx.used_elem(0).len == 1000);
    CHECK(h.rx.used_elem(1).len == ConsoleDevice::kInputCapacity - 1000);
    CHECK(text(read_guest(h.mem, kBuf, 2)) == "Aq");
    CHECK(h.device->input_space() == ConsoleDevice::kInputCapacity);

    // Input survives a reset and is delivered to the next driver.
    h.device->reset();
    CHECK(h.device->enqueue_input(bytes("after")) == 5);
}

TEST_CASE("virtio-console config, activation and broken rings", "[virtio][console]") {
    Harness h;
    uint32_t ports = 0;
    h.device->read_config(ConsoleDevice::kConfigMaxNrPorts,
                          std::as_writable_bytes(std::span(&ports, 1)));
    CHECK(ports == 1);
    uint16_t cols = 0xffff;
    h.device->read_config(0, std::as_writable_bytes(std::span(&cols, 1)));
    CHECK(cols == 0);
    CHECK((h.device->device_features() & kFeatureVersion1) != 0);

    ConsoleDevice other(nullptr);
    CHECK_FALSE(other.activate({&h.mem, {h.rx.make_queue()}, kFeatureVersion1, h.irq}).has_value());
    Queue unready = h.tx.make_queue();
    unready.set_ready(false);
    CHECK_FALSE(
        other.activate({&h.mem, {h.rx.make_queue(), unready}, kFeatureVersion1, h.irq}).has_value());

    // A transmit buffer outside RAM: DEVICE_NEEDS_RESET, nothing reaches the sink.
    h.tx.add_chain({{0x4000'0000, 16, false}});
    h.tx.publish();
    h.device->process_queue(ConsoleDevice::kTransmitQueue);
    CHECK(h.irq->needs_reset == 1);
    CHECK(h.output.empty());
}
