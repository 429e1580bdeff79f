// virtio-net against a socketpair standing in for the tap: a SOCK_SEQPACKET keeps
// frame boundaries exactly as a tap fd does, header included.
#include <catch2/catch.hpp>

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "../virtio_test_support.h"
#include "devices/virtio/net/net_device.h"

using namespace vmm;
using namespace vmm::devices::virtio;
using namespace vmm::devices::virtio::net;
using vmm::devices::virtio::test::TestRing;
using vmm::devices::virtio::test::kTestDataAddr;

namespace {

class SocketBackend final : public NetBackend {
public:
    explicit SocketBackend(int fd) : m_fd(fd) {}
    Result<std::optional<size_t>> read(std::span<const iovec> iov) override {
        ssize_t n = ::readv(m_fd.get(), iov.data(), static_cast<int>(iov.size()));
        if (n < 0 && errno == EAGAIN) return std::optional<size_t>{};
        if (n < 0) return Error::from_errno("readv");
        return std::optional<size_t>(static_cast<size_t>(n));
    }
    Result<size_t> write(std::span<const iovec> iov) override {
        ssize_t n = ::writev(m_fd.get(), iov.data(), static_cast<int>(iov.size()));
        if (n < 0) return Error::from_errno("writev");
        return static_cast<size_t>(n);
    }
    int fd() const override { return m_fd.get(); }

private:
    UniqueFd m_fd;
};

class FakeInterrupt final : public VirtioInterrupt {
public:
    void signal_used_queue(uint16_t queue) override { used.push_back(queue); }
    void signal_config_change() override { ++config_changes; }
    void set_device_needs_reset() override { ++needs_reset; }
    std::vector<uint16_t> used;
    int config_changes = 0;
    int needs_reset = 0;
};

std::vector<std::byte> pattern(size_t len, uint8_t seed) {
    std::vector<std::byte> v(len);
    for (size_t i = 0; i < len; ++i) v[i] = std::byte(static_cast<uint8_t>(seed + i * 7));
    return v;
}

// A header with every field set, as a hostile or sloppy peer might send it.
std::vector<std::byte> dirty_header() { return std::vector<std::byte>(kVnetHdrSize, std::byte{0xa5}); }

std::vector<std::byte> concat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

struct Fixture {
    memory::GuestMemory mem = test::make_test_memory();
    TestRing rx{mem, 16, 0x10000};
    TestRing tx{mem, 16, 0x80000};
    UniqueFd peer;
    std::shared_ptr<NetDevice> device;
    std::shared_ptr<FakeInterrupt> irq = std::make_shared<FakeInterrupt>();
    MacAddress mac{0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

    Fixture() {
        int fds[2];
        REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0);
        peer.reset(fds[1]);
        device = std::make_shared<NetDevice>(std::make_unique<SocketBackend>(fds[0]), mac, "net0");
    }
    void activate() {
        ActivateContext ctx;
        ctx.memory = &mem;
        ctx.queues.push_back(rx.make_queue());
        ctx.queues.push_back(tx.make_queue());
        ctx.acked_features = device->device_features();
        ctx.interrupt = irq;
        REQUIRE(device->activate(std::move(ctx)).has_value());
    }
    void peer_send(const std::vector<std::byte>& frame) {
        REQUIRE(::send(peer.get(), frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size()));
    }
    // One frame from the device, or empty when none is waiting.
    std::vector<std::byte> peer_recv() {
        std::vector<std::byte> buf(70000);
        ssize_t n = ::recv(peer.get(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) {
            REQUIRE(errno == EAGAIN);
            return {};
        }
        buf.resize(static_cast<size_t>(n));
        return buf;
    }
    void backend_ready() { device->process_backend(device->backend_fds().at(0), EPOLLIN); }
    uint64_t counter(const std::string& name) { return device->counters().at(name); }
};

}  // namespace

TEST_CASE("net device identity, features and MAC/status config space", "[virtio][net]") {
    Fixture f;
    CHECK(f.device->device_type() == kIdNet);
    CHECK(f.device->queue_max_sizes() == std::vector<uint16_t>{256, 256});
    uint64_t features = f.device->device_features();
    CHECK((features & kFeatureVersion1) != 0);
    CHECK((features & kNetFeatureMac) != 0);
    CHECK((features & kNetFeatureStatus) != 0);
    CHECK((features & kFeatureEventIdx) != 0);
    CHECK((features & kFeatureIndirectDesc) != 0);
    CHECK((features & (1ull << 15)) == 0);  // no MRG_RXBUF
    CHECK((features & 0x3fff) == kNetFeatureMac);  // no checksum/GSO offloads

    std::array<std::byte, 12> config{};
    config.fill(std::byte{0xee});
    f.device->read_config(0, config);
    for (size_t i = 0; i < 6; ++i) CHECK(std::to_integer<uint8_t>(config[i]) == f.mac[i]);
    CHECK(std::to_integer<uint8_t>(config[6]) == kNetStatusLinkUp);
    CHECK(std::to_integer<uint8_t>(config[7]) == 0);
    for (size_t i = 8; i < config.size(); ++i) CHECK(config[i] == std::byte{0});  // past the end

    std::array<std::byte, 2> part{};
    f.device->read_config(4, part);
    CHECK(std::to_integer<uint8_t>(part[0]) == 0x34);
    CHECK(std::to_integer<uint8_t>(part[1]) == 0x56);
    f.device->read_config(~0ull, part);  // absurd offset: zeros, no crash
    CHECK(part[0] == std::byte{0});

    // Writes are ignored: the MAC stays.
    std::array<std::byte, 6> junk{};
    f.device->write_config(0, junk);
    f.device->read_config(0, part);
    CHECK(std::to_integer<uint8_t>(part[0]) == 0x52);
}

TEST_CASE("net tx sends header and frame to the backend, header zeroed", "[virtio][net]") {
    Fixture f;
    f.activate();
    auto frame = pattern(100, 3);
    test::write_guest(f.mem, kTestDataAddr, dirty_header());
    test::write_guest(f.mem, kTestDataAddr + 0x1000, std::span(frame).first(40));
    test::write_guest(f.mem, kTestDataAddr + 0x2000, std::span(frame).subspan(40));
    uint16_t head = f.tx.add_chain({{kTestDataAddr, 12, false},
                                    {kTestDataAddr + 0x1000, 40, false},
                                    {kTestDataAddr + 0x2000, 60, false}});
    f.tx.publish();
    f.device->process_queue(kTxQueue);

    auto got = f.peer_recv();
    CHECK(got == concat(std::vector<std::byte>(12), frame));
    REQUIRE(f.tx.used_idx() == 1);
    CHECK(f.tx.used_elem(0).id == head);
    CHECK(f.tx.used_elem(0).len == 0);
    CHECK(f.irq->used == std::vector<uint16_t>{kTxQueue});
    CHECK(f.counter("tx_frames") == 1);
    CHECK(f.counter("tx_bytes") == 100);
    CHECK(f.counter("tx_dropped") == 0);
    // The guest's own copy of the header is untouched.
    CHECK(test::read_guest(f.mem, kTestDataAddr, 12) == dirty_header());
}

TEST_CASE("net tx drops chains too short for a header or too long", "[virtio][net]") {
    Fixture f;
    f.activate();
    uint16_t short_head = f.tx.add_chain({{kTestDataAddr, 8, false}});
    uint16_t long_head = f.tx.add_chain({{kTestDataAddr, 40000, false},
                                         {kTestDataAddr + 40000, 40000, false}});
    // A good frame after them still goes out.
    uint16_t good_head = f.tx.add_indirect_chain({{kTestDataAddr + 0x20000, 12, false},
                                                  {kTestDataAddr + 0x21000, 64, false}});
    f.tx.publish();
    f.device->process_queue(kTxQueue);

    REQUIRE(f.tx.used_idx() == 3);
    CHECK(f.tx.used_elem(0).id == short_head);
    CHECK(f.tx.used_elem(1).id == long_head);
    CHECK(f.tx.used_elem(2).id == good_head);
    CHECK(f.peer_recv().size() == 76);
    CHECK(f.peer_recv().empty());
    CHECK(f.counter("tx_dropped") == 2);
    CHECK(f.counter("tx_frames") == 1);
    CHECK(f.irq->needs_reset == 0);
}

TEST_CASE("net rx writes header and frame into guest buffers", "[virtio][net]") {
    Fixture f;
    f.activate();
    // Header and data in separate buffers, as older drivers lay them out.
    test::write_guest(f.mem, kTestDataAddr, std::vector<std::byte>(12, std::byte{0xcc}));
    uint16_t head = f.rx.add_chain({{kTestDataAddr, 12, true}, {kTestDataAddr + 0x1000, 1514, true}});
    f.rx.publish();
    auto frame = pattern(60, 9);
    auto header = std::vector<std::byte>(kVnetHdrSize);
    header[10] = std::byte{0x77};  // a bogus num_buffers the device must overwrite
    f.peer_send(concat(header, frame));
    f.backend_ready();

    REQUIRE(f.rx.used_idx() == 1);
    CHECK(f.rx.used_elem(0).id == head);
    CHECK(f.rx.used_elem(0).len == 72);
    auto hdr = test::read_guest(f.mem, kTestDataAddr, 12);
    CHECK(std::vector<std::byte>(hdr.begin(), hdr.begin() + 10) == std::vector<std::byte>(10));
    CHECK(std::to_integer<uint8_t>(hdr[10]) == 1);  // num_buffers = 1 (le16)
    CHECK(std::to_integer<uint8_t>(hdr[11]) == 0);
    CHECK(test::read_guest(f.mem, kTestDataAddr + 0x1000, 60) == frame);
    CHECK(f.irq->used == std::vector<uint16_t>{kRxQueue});
    CHECK(f.counter("rx_frames") == 1);
    CHECK(f.counter("rx_bytes") == 60);
}

TEST_CASE("net rx holds frames until the guest adds buffers", "[virtio][net]") {
    Fixture f;
    auto first = concat(std::vector<std::byte>(12), pattern(50, 1));
    auto second = concat(std::vector<std::byte>(12), pattern(70, 2));
    f.peer_send(first);
    f.backend_ready();  // not active yet: ignored, the frame waits
    f.activate();       // no rx buffers yet
    f.peer_send(second);
    f.backend_ready();
    CHECK(f.rx.used_idx() == 0);
    CHECK(f.counter("rx_dropped") == 0);

    f.rx.add_chain({{kTestDataAddr, 2048, true}});
    f.rx.publish();
    f.device->process_queue(kRxQueue);
    REQUIRE(f.rx.used_idx() == 1);
    CHECK(f.rx.used_elem(0).len == first.size());
    CHECK(test::read_guest(f.mem, kTestDataAddr + 12, 50) == pattern(50, 1));

    f.rx.add_indirect_chain({{kTestDataAddr + 0x1000, 2048, true}});
    f.rx.publish();
    f.device->process_queue(kRxQueue);
    REQUIRE(f.rx.used_idx() == 2);
    CHECK(f.rx.used_elem(1).len == second.size());
    CHECK(test::read_guest(f.mem, kTestDataAddr + 0x1000 + 12, 70) == pattern(70, 2));
    CHECK(f.counter("rx_frames") == 2);
}

TEST_CASE("net rx drops a frame longer than the guest's buffer", "[virtio][net]") {
    Fixture f;
    f.activate();
    uint16_t head = f.rx.add_chain({{kTestDataAddr, 100, true}});
    f.rx.publish();
    f.peer_send(concat(std::vector<std::byte>(12), pattern(200, 5)));
    f.peer_send(concat(std::vector<std::byte>(12), pattern(50, 6)));
    f.backend_ready();

    // The same buffer takes the next frame that fits.
    REQUIRE(f.rx.used_idx() == 1);
    CHECK(f.rx.used_elem(0).id == head);
    CHECK(f.rx.used_elem(0).len == 62);
    CHECK(test::read_guest(f.mem, kTestDataAddr + 12, 50) == pattern(50, 6));
    CHECK(f.counter("rx_dropped") == 1);
    CHECK(f.counter("rx_frames") == 1);
}

TEST_CASE("net rx completes unusable chains without delivering into them", "[virtio][net]") {
    Fixture f;
    f.activate();
    test::write_guest(f.mem, kTestDataAddr, pattern(64, 4));
    uint16_t readable = f.rx.add_chain({{kTestDataAddr, 64, false}});
    uint16_t tiny = f.rx.add_chain({{kTestDataAddr + 0x1000, 8, true}});
    uint16_t good = f.rx.add_chain({{kTestDataAddr + 0x2000, 2048, true}});
    f.rx.publish();
    f.peer_send(concat(std::vector<std::byte>(12), pattern(30, 8)));
    f.backend_ready();

    REQUIRE(f.rx.used_idx() == 3);
    CHECK(f.rx.used_elem(0).id == readable);
    CHECK(f.rx.used_elem(0).len == 0);
    CHECK(f.rx.used_elem(1).id == tiny);
    CHECK(f.rx.used_elem(1).len == 0);
    CHECK(f.rx.used_elem(2).id == good);
    CHECK(f.rx.used_elem(2).len == 42);
    CHECK(test::read_guest(f.mem, kTestDataAddr, 64) == pattern(64, 4));  // not written
    CHECK(f.irq->needs_reset == 0);
}

TEST_CASE("net device asks for reset on a broken ring and goes quiet", "[virtio][net]") {
    Fixture f;
    f.activate();
    f.tx.set_avail_idx(1000);  // more entries than the ring holds
    f.device->process_queue(kTxQueue);
    CHECK(f.irq->needs_reset == 1);
    CHECK(f.tx.used_idx() == 0);

    // Until reset nothing is processed, and the backend is left alone.
    f.peer_send(concat(std::vector<std::byte>(12), pattern(30, 1)));
    f.rx.add_chain({{kTestDataAddr, 2048, true}});
    f.rx.publish();
    f.backend_ready();
    f.device->process_queue(kRxQueue);
    CHECK(f.rx.used_idx() == 0);
    CHECK(f.irq->needs_reset == 1);

    // After reset and re-activation the device works again.
    f.device->reset();
    f.device->process_queue(kRxQueue);  // inactive: no-op
    CHECK(f.rx.used_idx() == 0);
    test::TestRing tx2(f.mem, 16, 0x80000);
    test::TestRing rx2(f.mem, 16, 0x10000);
    ActivateContext ctx;
    ctx.memory = &f.mem;
    ctx.queues.push_back(rx2.make_queue());
    ctx.queues.push_back(tx2.make_queue());
    ctx.interrupt = f.irq;
    REQUIRE(f.device->activate(std::move(ctx)).has_value());
    rx2.add_chain({{kTestDataAddr, 2048, true}});
    rx2.publish();
    f.device->process_queue(kRxQueue);
    CHECK(rx2.used_idx() == 1);
}

TEST_CASE("net activate rejects a wrong queue count", "[virtio][net]") {
    Fixture f;
    ActivateContext ctx;
    ctx.memory = &f.mem;
    ctx.queues.push_back(f.rx.make_queue());
    ctx.interrupt = f.irq;
    auto r = f.device->activate(std::move(ctx));
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().message(), Catch::Contains("expected 2 queues"));
}
