#include "devices/virtio/rng/rng_device.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
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

struct Harness {
    explicit Harness(const std::string& source = "/dev/urandom") {
        auto dev = RngDevice::create(source);
        REQUIRE(dev.has_value());
        device = *dev;
        REQUIRE(device->activate({&mem, {ring.make_queue()}, kFeatureVersion1, irq}).has_value());
    }
    UsedElem run(const std::vector<BufferSpec>& buffers) {
        ring.add_chain(buffers);
        ring.publish();
        device->process_queue(0);
        REQUIRE(ring.used_idx() == ++used);
        return ring.used_elem(static_cast<uint16_t>(used - 1));
    }

    memory::GuestMemory mem = make_test_memory();
    TestRing ring{mem, 16};
    std::shared_ptr<FakeVirtioInterrupt> irq = std::make_shared<FakeVirtioInterrupt>();
    std::shared_ptr<RngDevice> device;
    uint16_t used = 0;
};

bool all_equal(const std::vector<std::byte>& v, std::byte b) {
    return std::all_of(v.begin(), v.end(), [b](std::byte x) { return x == b; });
}

}  // namespace

TEST_CASE("virtio-rng fills device-writable buffers", "[virtio][rng]") {
    Harness h;
    CHECK(h.device->device_type() == kIdRng);
    UsedElem e = h.run({{kTestDataAddr, 4096, true}, {kTestDataAddr + 0x2000, 100, true}});
    CHECK(e.len == 4196);
    CHECK_FALSE(all_equal(read_guest(h.mem, kTestDataAddr, 4096), std::byte{0}));
    CHECK_FALSE(all_equal(read_guest(h.mem, kTestDataAddr + 0x2000, 100), std::byte{0}));
    CHECK(h.irq->used == std::vector<uint16_t>{0});
    auto c = h.device->counters();
    CHECK(c["bytes"] == 4196);
    CHECK(c["requests"] == 1);
}

TEST_CASE("virtio-rng bounds each chain", "[virtio][rng]") {
    Harness h;
    constexpr uint32_t kHalf = 48 * 1024;
    REQUIRE(h.mem.fill(memory::GuestAddress(kTestDataAddr), 2 * kHalf, std::byte{0xaa}).has_value());
    UsedElem e = h.run({{kTestDataAddr, kHalf, true}, {kTestDataAddr + kHalf, kHalf, true}});
    CHECK(e.len == RngDevice::kMaxBytesPerChain);
    // Everything after the first 64 KiB is untouched.
    uint64_t rest = 2 * kHalf - RngDevice::kMaxBytesPerChain;
    CHECK(all_equal(read_guest(h.mem, kTestDataAddr + RngDevice::kMaxBytesPerChain, rest),
                    std::byte{0xaa}));
    CHECK(h.device->counters()["bytes"] == RngDevice::kMaxBytesPerChain);
}

TEST_CASE("virtio-rng reads its configured source and skips readable buffers", "[virtio][rng]") {
    char name[] = "/tmp/vdev_rng_XXXXXX";
    int fd = ::mkstemp(name);
    REQUIRE(fd >= 0);
    const std::string content = "0123456789";
    REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    ::close(fd);
    {
        Harness h(name);
        // A readable buffer gets nothing; the source ends after 10 bytes.
        UsedElem e = h.run({{kTestDataAddr, 64, false}, {kTestDataAddr + 0x1000, 4, true},
                            {kTestDataAddr + 0x2000, 64, true}});
        CHECK(e.len == 10);
        auto a = read_guest(h.mem, kTestDataAddr + 0x1000, 4);
        auto b = read_guest(h.mem, kTestDataAddr + 0x2000, 6);
        CHECK(std::string(reinterpret_cast<const char*>(a.data()), 4) == "0123");
        CHECK(std::string(reinterpret_cast<const char*>(b.data()), 6) == "456789");
        CHECK(all_equal(read_guest(h.mem, kTestDataAddr, 64), std::byte{0}));
        // Source exhausted: completed with length 0 rather than left pending.
        CHECK(h.run({{kTestDataAddr, 64, true}}).len == 0);
        CHECK(h.device->counters()["requests"] == 2);
    }
    ::unlink(name);
    CHECK_FALSE(RngDevice::create("/nonexistent/rng").has_value());
}

TEST_CASE("virtio-rng activation and broken rings", "[virtio][rng]") {
    auto mem = make_test_memory();
    TestRing ring(mem, 8);
    auto irq = std::make_shared<FakeVirtioInterrupt>();
    auto dev = *RngDevice::create();
    CHECK_FALSE(dev->activate({&mem, {}, kFeatureVersion1, irq}).has_value());
    CHECK_FALSE(dev->activate({&mem, {ring.make_queue()}, kFeatureVersion1, nullptr}).has_value());
    REQUIRE(dev->activate({&mem, {ring.make_queue()}, kFeatureVersion1, irq}).has_value());
    ring.set_avail_idx(1000);  // more chains than the ring holds
    dev->process_queue(0);
    CHECK(irq->needs_reset == 1);
    CHECK(ring.used_idx() == 0);
}
