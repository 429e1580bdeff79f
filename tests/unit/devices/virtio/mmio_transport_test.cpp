#include "devices/virtio/mmio_transport.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <thread>

#include "../fake_interrupt_line.h"
#include "fake_virtio_device.h"
#include "virtio_test_support.h"

using namespace vmm;
using namespace vmm::devices::virtio;
using devices::test::FakeInterruptLine;
using test::FakeVirtioDevice;

namespace {

constexpr uint32_t kAck = 1, kDriver = 2, kDriverOk = 4, kFeaturesOk = 8, kNeedsReset = 64,
                   kFailed = 128;

// Queue layouts inside the 2 MiB test memory.
struct QueueLayout {
    uint16_t size;
    uint64_t desc, avail, used;
};
constexpr QueueLayout kQueue0{128, 0x10000, 0x20000, 0x30000};
constexpr QueueLayout kQueue1{64, 0x140000, 0x150000, 0x160000};

struct Fixture {
    memory::GuestMemory mem = test::make_test_memory();
    std::shared_ptr<FakeVirtioDevice> dev = std::make_shared<FakeVirtioDevice>();
    std::shared_ptr<FakeInterruptLine> irq = std::make_shared<FakeInterruptLine>();
    std::unique_ptr<MmioTransport> transport;

    MmioTransport& t() {
        if (!transport) transport = std::make_unique<MmioTransport>(dev, mem, irq);
        return *transport;
    }
    uint32_t rd(uint64_t off) {
        uint32_t v = 0xdeadbeef;
        t().read(off, std::as_writable_bytes(std::span(&v, 1)));
        return v;
    }
    void wr(uint64_t off, uint32_t v) { t().write(off, std::as_bytes(std::span(&v, 1))); }

    void negotiate(uint64_t features) {
        wr(0x70, kAck);
        wr(0x70, kAck | kDriver);
        wr(0x24, 0);
        wr(0x20, static_cast<uint32_t>(features));
        wr(0x24, 1);
        wr(0x20, static_cast<uint32_t>(features >> 32));
        wr(0x70, kAck | kDriver | kFeaturesOk);
    }
    void setup_queue(uint32_t index, const QueueLayout& q, bool ready = true) {
        wr(0x30, index);
        wr(0x38, q.size);
        wr(0x80, static_cast<uint32_t>(q.desc));
        wr(0x84, static_cast<uint32_t>(q.desc >> 32));
        wr(0x90, static_cast<uint32_t>(q.avail));
        wr(0x94, static_cast<uint32_t>(q.avail >> 32));
        wr(0xa0, static_cast<uint32_t>(q.used));
        wr(0xa4, static_cast<uint32_t>(q.used >> 32));
        wr(0x44, ready ? 1 : 0);
    }
    // The whole Linux-style probe up to DRIVER_OK.
    void bring_up(uint64_t features = kFeatureVersion1 | kFeatureEventIdx) {
        negotiate(features);
        setup_queue(0, kQueue0);
        setup_queue(1, kQueue1);
        wr(0x70, kAck | kDriver | kFeaturesOk | kDriverOk);
    }
};

}  // namespace

TEST_CASE("mmio: identification registers", "[virtio][mmio]") {
    Fixture f;
    f.dev->type = kIdBlock;
    CHECK(f.rd(0x000) == 0x74726976);
    CHECK(f.rd(0x004) == 2);
    CHECK(f.rd(0x008) == kIdBlock);
    CHECK(f.rd(0x00c) == 0x4d4d5600);
    CHECK(f.rd(0x070) == 0);
    CHECK(f.t().num_queues() == 2);
    CHECK_FALSE(f.t().activated());
}

TEST_CASE("mmio: device feature windows", "[virtio][mmio]") {
    Fixture f;
    f.dev->features = kFeatureVersion1 | (1ull << 35) | kFeatureEventIdx | 0x3;
    f.wr(0x14, 0);
    CHECK(f.rd(0x10) == ((1u << 29) | 0x3));
    f.wr(0x14, 1);
    CHECK(f.rd(0x10) == ((1u << 0) | (1u << 3)));
    f.wr(0x14, 2);
    CHECK(f.rd(0x10) == 0);
    f.wr(0x14, 0xffffffff);
    CHECK(f.rd(0x10) == 0);
}

TEST_CASE("mmio: full init sequence activates the device", "[virtio][mmio]") {
    Fixture f;
    const uint64_t acked = kFeatureVersion1 | kFeatureEventIdx | 0x1;
    f.negotiate(acked);
    CHECK(f.rd(0x70) == (kAck | kDriver | kFeaturesOk));
    f.wr(0x30, 0);
    CHECK(f.rd(0x34) == 256);
    CHECK(f.rd(0x44) == 0);
    f.setup_queue(0, kQueue0);
    f.setup_queue(1, kQueue1);
    CHECK(f.dev->activate_calls == 0);
    f.wr(0x70, kAck | kDriver | kFeaturesOk | kDriverOk);

    REQUIRE(f.dev->activate_calls == 1);
    CHECK(f.t().activated());
    CHECK(f.rd(0x70) == (kAck | kDriver | kFeaturesOk | kDriverOk));
    const ActivateContext& ctx = *f.dev->last_context;
    CHECK(ctx.acked_features == acked);
    CHECK(ctx.memory == &f.mem);
    CHECK(ctx.interrupt != nullptr);
    REQUIRE(ctx.queues.size() == 2);
    const QueueLayout layouts[] = {kQueue0, kQueue1};
    for (size_t i = 0; i < 2; ++i) {
        const Queue& q = ctx.queues[i];
        CHECK(q.ready());
        CHECK(q.size() == layouts[i].size);
        CHECK(q.max_size() == f.dev->max_sizes[i]);
        CHECK(q.desc_table().raw == layouts[i].desc);
        CHECK(q.avail_ring().raw == layouts[i].avail);
        CHECK(q.used_ring().raw == layouts[i].used);
    }
    CHECK(f.irq->count() == 0);
}

TEST_CASE("mmio: a queue the driver left unready is passed unready", "[virtio][mmio]") {
    Fixture f;
    f.negotiate(kFeatureVersion1);
    f.setup_queue(0, kQueue0);
    f.wr(0x70, kAck | kDriver | kFeaturesOk | kDriverOk);
    REQUIRE(f.dev->activate_calls == 1);
    REQUIRE(f.dev->last_context->queues.size() == 2);
    CHECK(f.dev->last_context->queues[0].ready());
    CHECK_FALSE(f.dev->last_context->queues[1].ready());
}

TEST_CASE("mmio: FEATURES_OK refused for unacceptable features", "[virtio][mmio]") {
    Fixture f;
    uint64_t features = 0;
    SECTION("without VERSION_1") { features = kFeatureEventIdx; }
    SECTION("with a bit the device did not offer") { features = kFeatureVersion1 | (1ull << 40); }
    f.negotiate(features);
    CHECK(f.rd(0x70) == (kAck | kDriver));
    // Nothing can start on top of the refusal.
    f.setup_queue(0, kQueue0);
    f.wr(0x70, kAck | kDriver | kFeaturesOk | kDriverOk);
    CHECK(f.dev->activate_calls == 0);
    CHECK((f.rd(0x70) & (kFeaturesOk | kDriverOk)) == 0);
}

TEST_CASE("mmio: status transitions that skip steps are ignored", "[virtio][mmio]") {
    Fixture f;
    SECTION("DRIVER before ACKNOWLEDGE") {
        f.wr(0x70, kDriver);
        CHECK(f.rd(0x70) == 0);
    }
    SECTION("DRIVER_OK before FEATURES_OK") {
        f.wr(0x70, kAck);
        f.wr(0x70, kAck | kDriver);
        f.setup_queue(0, kQueue0);
        f.wr(0x70, kAck | kDriver | kDriverOk);
        CHECK(f.rd(0x70) == (kAck | kDriver));
        CHECK(f.dev->activate_calls == 0);
    }
    SECTION("clearing bits without a reset") {
        f.negotiate(kFeatureVersion1);
        f.wr(0x70, kAck);
        CHECK(f.rd(0x70) == (kAck | kDriver | kFeaturesOk));
    }
    SECTION("the driver cannot set DEVICE_NEEDS_RESET") {
        f.wr(0x70, kAck | kNeedsReset);
        CHECK(f.rd(0x70) == kAck);
    }
    SECTION("DRIVER_OK after FAILED") {
        f.negotiate(kFeatureVersion1);
        f.wr(0x70, kAck | kDriver | kFeaturesOk | kFailed);
        f.wr(0x70, kAck | kDriver | kFeaturesOk | kFailed | kDriverOk);
        CHECK(f.rd(0x70) == (kAck | kDriver | kFeaturesOk | kFailed));
        CHECK(f.dev->activate_calls == 0);
    }
}

TEST_CASE("mmio: DriverFeatures only writable while negotiating", "[virtio][mmio]") {
    Fixture f;
    f.wr(0x70, kAck);
    f.wr(0x20, 0x1);  // before DRIVER: dropped
    f.wr(0x70, kAck | kDriver);
    f.wr(0x24, 1);
    f.wr(0x20, 0x1);  // VERSION_1
    f.wr(0x70, kAck | kDriver | kFeaturesOk);
    f.wr(0x24, 0);
    f.wr(0x20, 0x4);  // after FEATURES_OK: dropped
    f.wr(0x70, kAck | kDriver | kFeaturesOk | kDriverOk);
    REQUIRE(f.dev->activate_calls == 1);
    CHECK(f.dev->last_context->acked_features == kFeatureVersion1);
}

TEST_CASE("mmio: queue registers", "[virtio][mmio]") {
    Fixture f;
    SECTION("QueueNumMax is 0 for a queue that does not exist") {
        f.wr(0x30, 2);
        CHECK(f.rd(0x34) == 0);
        f.wr(0x38, 16);  // harmless
        f.wr(0x44, 1);
        CHECK(f.rd(0x44) == 0);
        f.wr(0x30, 1);
        CHECK(f.rd(0x34) == 64);
    }
    SECTION("QueueNum above the maximum is ignored") {
        f.wr(0x30, 1);
        f.wr(0x38, 32);
        f.wr(0x38, 65);
        CHECK(f.rd(0x38) == 32);
    }
    SECTION("locked after DRIVER_OK") {
        f.bring_up();
        f.wr(0x30, 0);
        f.wr(0x38, 16);
        f.wr(0x80, 0x70000);
        f.wr(0x44, 0);
        CHECK(f.rd(0x38) == kQueue0.size);
        CHECK(f.rd(0x80) == kQueue0.desc);
        CHECK(f.rd(0x44) == 1);
    }
}

TEST_CASE("mmio: reset returns everything to the initial state", "[virtio][mmio]") {
    Fixture f;
    f.bring_up();
    REQUIRE(f.t().activated());
    auto irq_obj = f.dev->interrupt();
    irq_obj->signal_config_change();
    irq_obj->signal_used_queue(0);
    const uint32_t generation = f.rd(0xfc);

    f.wr(0x70, 0);
    CHECK(f.dev->reset_calls == 1);
    CHECK_FALSE(f.t().activated());
    CHECK(f.rd(0x70) == 0);
    CHECK(f.rd(0x60) == 0);
    CHECK(f.rd(0xfc) >= generation);  // never goes back: drivers compare it
    f.wr(0x30, 0);
    CHECK(f.rd(0x44) == 0);
    CHECK(f.rd(0x38) == 256);
    CHECK(f.rd(0x80) == 0);
    CHECK(f.rd(0xa0) == 0);

    // A late signal from the old activation is dropped.
    const int triggers = f.irq->count();
    irq_obj->signal_used_queue(0);
    irq_obj->set_device_needs_reset();
    CHECK(f.rd(0x60) == 0);
    CHECK(f.rd(0x70) == 0);
    CHECK(f.irq->count() == triggers);

    // Features were cleared: a new negotiation starts from zero.
    f.wr(0x70, kAck);
    f.wr(0x70, kAck | kDriver);
    f.wr(0x24, 1);
    f.wr(0x20, 0x1);
    f.wr(0x70, kAck | kDriver | kFeaturesOk);
    f.setup_queue(0, kQueue0);
    f.wr(0x70, kAck | kDriver | kFeaturesOk | kDriverOk);
    REQUIRE(f.dev->activate_calls == 2);
    CHECK(f.dev->last_context->acked_features == kFeatureVersion1);
}

TEST_CASE("mmio: reset before DRIVER_OK does not reset the device", "[virtio][mmio]") {
    Fixture f;
    f.negotiate(kFeatureVersion1);
    f.wr(0x70, 0);
    CHECK(f.dev->reset_calls == 0);
    CHECK(f.rd(0x70) == 0);
}

TEST_CASE("mmio: bad queue configuration at DRIVER_OK", "[virtio][mmio]") {
    Fixture f;
    f.negotiate(kFeatureVersion1);
    f.setup_queue(0, kQueue0);
    SECTION("size not a power of two") { f.setup_queue(1, {48, 0x40000, 0x50000, 0x60000}); }
    SECTION("ring outside guest RAM") { f.setup_queue(1, {64, 0x40000000, 0x50000, 0x60000}); }
    SECTION("misaligned descriptor table") { f.setup_queue(1, {64, 0x40008, 0x50000, 0x60000}); }
    f.wr(0x70, kAck | kDriver | kFeaturesOk | kDriverOk);
    CHECK(f.dev->activate_calls == 0);
    CHECK_FALSE(f.t().activated());
    CHECK((f.rd(0x70) & kNeedsReset) != 0);
    CHECK((f.rd(0x60) & 2) != 0);
    CHECK(f.irq->count() == 1);
    f.wr(0x50, 0);
    CHECK(f.dev->processed().empty());
}

TEST_CASE("mmio: device activate error sets DEVICE_NEEDS_RESET", "[virtio][mmio]") {
    Fixture f;
    f.dev->activate_error = "backend gone";
    f.bring_up();
    CHECK(f.dev->activate_calls == 1);
    CHECK_FALSE(f.t().activated());
    CHECK(f.t().status() == (kAck | kDriver | kFeaturesOk | kDriverOk | kNeedsReset));
    CHECK(f.rd(0x60) == 2);
    CHECK(f.irq->count() == 1);
    // Reset clears it; the device is reset since it saw DRIVER_OK.
    f.wr(0x70, 0);
    CHECK(f.rd(0x70) == 0);
    CHECK(f.dev->reset_calls == 1);
}

TEST_CASE("mmio: interrupt status, ack and config generation", "[virtio][mmio]") {
    Fixture f;
    f.bring_up();
    auto irq_obj = f.dev->interrupt();
    REQUIRE(irq_obj);
    CHECK(f.rd(0x60) == 0);
    const uint32_t gen0 = f.rd(0xfc);

    irq_obj->signal_used_queue(1);
    CHECK(f.rd(0x60) == 1);
    CHECK(f.irq->count() == 1);
    CHECK(f.rd(0xfc) == gen0);

    irq_obj->signal_config_change();
    CHECK(f.rd(0x60) == 3);
    CHECK(f.irq->count() == 2);
    CHECK(f.rd(0xfc) != gen0);

    f.wr(0x64, 1);
    CHECK(f.rd(0x60) == 2);
    f.wr(0x64, 2);
    CHECK(f.rd(0x60) == 0);

    irq_obj->set_device_needs_reset();
    CHECK((f.rd(0x70) & kNeedsReset) != 0);
    CHECK(f.rd(0x60) == 2);
    CHECK(f.irq->count() == 3);
}

TEST_CASE("mmio: config space is forwarded with offsets", "[virtio][mmio]") {
    Fixture f;
    for (int i = 0; i < 16; ++i) f.dev->config.push_back(std::byte(0x10 + i));
    std::byte b{};
    f.t().read(0x103, std::span(&b, 1));
    CHECK(b == std::byte{0x13});
    uint16_t w = 0;
    f.t().read(0x104, std::as_writable_bytes(std::span(&w, 1)));
    CHECK(w == 0x1514);
    CHECK(f.rd(0x108) == 0x1b1a1918u);
    uint64_t q = 0;
    f.t().read(0x108, std::as_writable_bytes(std::span(&q, 1)));
    CHECK(q == 0x1f1e1d1c1b1a1918ull);
    CHECK(f.rd(0x200) == 0);  // past the device's config

    const uint16_t value = 0xbeef;
    f.t().write(0x10a, std::as_bytes(std::span(&value, 1)));
    REQUIRE(f.dev->config_writes.size() == 1);
    CHECK(f.dev->config_writes[0].offset == 0xa);
    REQUIRE(f.dev->config_writes[0].data.size() == 2);
    CHECK(f.dev->config_writes[0].data[0] == std::byte{0xef});
    CHECK(f.dev->config_writes[0].data[1] == std::byte{0xbe});
}

TEST_CASE("mmio: register accesses other than aligned 32-bit are ignored", "[virtio][mmio]") {
    Fixture f;
    uint16_t w = 0xffff;
    f.t().read(0x000, std::as_writable_bytes(std::span(&w, 1)));
    CHECK(w == 0);
    uint64_t q = ~0ull;
    f.t().read(0x000, std::as_writable_bytes(std::span(&q, 1)));
    CHECK(q == 0);
    CHECK(f.rd(0x002) == 0);  // unaligned

    std::byte b{kAck};
    f.t().write(0x070, std::span<const std::byte>(&b, 1));
    CHECK(f.rd(0x070) == 0);
    const uint32_t ack = kAck;
    f.t().write(0x071, std::as_bytes(std::span(&ack, 1)));
    CHECK(f.rd(0x070) == 0);
}

TEST_CASE("mmio: queue notifications", "[virtio][mmio]") {
    Fixture f;
    SECTION("ignored before activation") {
        f.wr(0x50, 0);
        f.t().notify_queue(0);
        CHECK(f.dev->processed().empty());
    }
    SECTION("forwarded after activation, out-of-range indices ignored") {
        f.bring_up();
        f.wr(0x50, 1);
        f.t().notify_queue(0);
        f.wr(0x50, 2);
        f.wr(0x50, 0x10000);
        f.t().notify_queue(7);
        CHECK(f.dev->processed() == std::vector<uint16_t>{1, 0});
    }
}

TEST_CASE("mmio: signals from another thread while a vCPU acks", "[virtio][mmio]") {
    Fixture f;
    f.bring_up();
    auto irq_obj = f.dev->interrupt();
    REQUIRE(irq_obj);
    constexpr int kSignals = 20000;
    std::thread event_loop([&] {
        for (int i = 0; i < kSignals; ++i) irq_obj->signal_used_queue(0);
    });
    // The vCPU side: read and ack whatever is pending, like the Linux handler.
    bool only_used_bit = true;
    for (int i = 0; i < kSignals; ++i) {
        const uint32_t pending = f.rd(0x60);
        only_used_bit = only_used_bit && (pending & ~1u) == 0;
        if (pending) f.wr(0x64, pending);
    }
    event_loop.join();
    CHECK(only_used_bit);
    CHECK(f.irq->count() == kSignals);  // every signal raised the line
    CHECK(f.rd(0x60) <= 1);
}
