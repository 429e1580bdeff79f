#include "devices/virtio/block/block_device.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "../virtio_test_support.h"

using namespace vmm;
using namespace vmm::devices::virtio;
using namespace vmm::devices::virtio::test;

namespace {

class FakeVirtioInterrupt final : public VirtioInterrupt {
public:
    void signal_used_queue(uint16_t queue_index) override { used.push_back(queue_index); }
    void signal_config_change() override { ++config_changes; }
    void set_device_needs_reset() override { ++needs_reset; }
    std::vector<uint16_t> used;
    int config_changes = 0;
    int needs_reset = 0;
};

// A temporary raw image whose byte i holds (i * 7 + i / 512) & 0xff.
class TempDisk {
public:
    explicit TempDisk(size_t bytes) {
        char name[] = "/tmp/vdev_blk_XXXXXX";
        int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        m_path = name;
        std::vector<std::byte> data(bytes);
        for (size_t i = 0; i < bytes; ++i) data[i] = std::byte((i * 7 + i / 512) & 0xff);
        REQUIRE(::pwrite(fd, data.data(), bytes, 0) == static_cast<ssize_t>(bytes));
        ::close(fd);
    }
    ~TempDisk() { ::unlink(m_path.c_str()); }
    const std::string& path() const { return m_path; }
    std::vector<std::byte> read(uint64_t offset, size_t len) const {
        std::vector<std::byte> out(len);
        int fd = ::open(m_path.c_str(), O_RDONLY);
        REQUIRE(fd >= 0);
        REQUIRE(::pread(fd, out.data(), len, static_cast<off_t>(offset)) == static_cast<ssize_t>(len));
        ::close(fd);
        return out;
    }

private:
    std::string m_path;
};

struct Header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

constexpr uint64_t kHeaderAddr = kTestDataAddr;
constexpr uint64_t kDataAddr = kTestDataAddr + 0x1000;
constexpr uint64_t kData2Addr = kTestDataAddr + 0x40000;
constexpr uint64_t kStatusAddr = kTestDataAddr + 0xff000;
constexpr uint64_t kDiskBytes = 64 * 512;

std::vector<std::byte> pattern(size_t len, uint8_t seed) {
    std::vector<std::byte> v(len);
    for (size_t i = 0; i < len; ++i) v[i] = std::byte((seed + i * 13) & 0xff);
    return v;
}

class Harness {
public:
    explicit Harness(BlockOptions options) {
        auto dev = BlockDevice::create(options);
        REQUIRE(dev.has_value());
        device = *dev;
        ActivateContext ctx;
        ctx.memory = &mem;
        ctx.queues.push_back(ring.make_queue());
        ctx.acked_features = kFeatureVersion1 | kFeatureIndirectDesc;
        ctx.interrupt = irq;
        REQUIRE(device->activate(std::move(ctx)).has_value());
    }

    void header(uint32_t type, uint64_t sector) {
        REQUIRE(mem.write_obj(memory::GuestAddress(kHeaderAddr), Header{type, 0, sector}).has_value());
        write_guest(mem, kStatusAddr, std::vector<std::byte>{std::byte{0xee}});
    }
    // Publishes the chain, lets the device run it, returns the used element.
    UsedElem run(const std::vector<BufferSpec>& buffers) {
        ring.add_chain(buffers);
        ring.publish();
        device->process_queue(0);
        REQUIRE(ring.used_idx() == ++m_used);
        return ring.used_elem(static_cast<uint16_t>(m_used - 1));
    }
    uint8_t status() const { return std::to_integer<uint8_t>(read_guest(mem, kStatusAddr, 1)[0]); }

    memory::GuestMemory mem = make_test_memory();
    TestRing ring{mem, 16};
    std::shared_ptr<FakeVirtioInterrupt> irq = std::make_shared<FakeVirtioInterrupt>();
    std::shared_ptr<BlockDevice> device;

private:
    uint16_t m_used = 0;
};

constexpr BufferSpec kHeaderBuf{kHeaderAddr, 16, false};
constexpr BufferSpec kStatusBuf{kStatusAddr, 1, true};

void check_write_then_read(Harness& h, const TempDisk& disk, uint64_t data_addr) {
    auto data = pattern(1024, 5);
    write_guest(h.mem, data_addr, data);
    h.header(kBlkTypeOut, 3);
    UsedElem w = h.run({kHeaderBuf, {data_addr, 1024, false}, kStatusBuf});
    CHECK(h.status() == kBlkStatusOk);
    CHECK(w.len == 1);
    CHECK(disk.read(3 * 512, 1024) == data);

    // Read back into two separate 512-byte buffers.
    h.header(kBlkTypeIn, 3);
    UsedElem r = h.run({kHeaderBuf, {kData2Addr, 512, true}, {kData2Addr + 0x3001, 512, true},
                        kStatusBuf});
    CHECK(h.status() == kBlkStatusOk);
    CHECK(r.len == 1025);
    auto back = read_guest(h.mem, kData2Addr, 512);
    auto back2 = read_guest(h.mem, kData2Addr + 0x3001, 512);
    back.insert(back.end(), back2.begin(), back2.end());
    CHECK(back == data);
}

}  // namespace

TEST_CASE("virtio-blk writes then reads back", "[virtio][blk]") {
    TempDisk disk(kDiskBytes);
    Harness h({disk.path(), false, false, "disk0"});
    check_write_then_read(h, disk, kDataAddr);
    CHECK(h.irq->used == std::vector<uint16_t>{0, 0});
    auto c = h.device->counters();
    CHECK(c["write_ops"] == 1);
    CHECK(c["read_ops"] == 1);
    CHECK(c["write_bytes"] == 1024);
    CHECK(c["read_bytes"] == 1024);
    CHECK(c["errors"] == 0);
}

TEST_CASE("virtio-blk O_DIRECT goes through the bounce buffer with unaligned guest buffers",
          "[virtio][blk]") {
    TempDisk disk(kDiskBytes);
    Harness h({disk.path(), false, true, "direct"});
    check_write_then_read(h, disk, kDataAddr + 3);  // deliberately misaligned
    // A request larger than the bounce buffer takes several chunks.
    static_assert(DiskFile::kBounceSize < 0x60000);
    TempDisk big(0x80000);
    Harness hb({big.path(), false, true, "big"});
    hb.header(kBlkTypeIn, 0);
    UsedElem r = hb.run({kHeaderBuf, {kDataAddr + 1, 0x60000, true}, kStatusBuf});
    CHECK(hb.status() == kBlkStatusOk);
    CHECK(r.len == 0x60001);
    CHECK(read_guest(hb.mem, kDataAddr + 1, 0x60000) == big.read(0, 0x60000));
}

TEST_CASE("virtio-blk accepts data in the header and status descriptors", "[virtio][blk]") {
    // No framing may be assumed (virtio 1.2 §2.6.4): header+data in one descriptor,
    // data+status in another.
    TempDisk disk(kDiskBytes);
    Harness h({disk.path(), false, false, "disk0"});
    auto data = pattern(512, 9);
    REQUIRE(h.mem.write_obj(memory::GuestAddress(kHeaderAddr), Header{kBlkTypeOut, 7, 1}).has_value());
    write_guest(h.mem, kHeaderAddr + 16, data);
    h.run({{kHeaderAddr, 16 + 512, false}, kStatusBuf});
    CHECK(h.status() == kBlkStatusOk);
    CHECK(disk.read(512, 512) == data);

    REQUIRE(h.mem.write_obj(memory::GuestAddress(kHeaderAddr), Header{kBlkTypeIn, 0, 1}).has_value());
    UsedElem r = h.run({kHeaderBuf, {kData2Addr, 513, true}});
    CHECK(r.len == 513);
    CHECK(std::to_integer<uint8_t>(read_guest(h.mem, kData2Addr + 512, 1)[0]) == kBlkStatusOk);
    CHECK(read_guest(h.mem, kData2Addr, 512) == data);
}

TEST_CASE("virtio-blk flush and get-id", "[virtio][blk]") {
    TempDisk disk(kDiskBytes);
    Harness h({disk.path(), false, false, "my-disk"});
    h.header(kBlkTypeFlush, 0);
    CHECK(h.run({kHeaderBuf, kStatusBuf}).len == 1);
    CHECK(h.status() == kBlkStatusOk);
    CHECK(h.device->counters()["flush_ops"] == 1);

    write_guest(h.mem, kDataAddr, std::vector<std::byte>(20, std::byte{0x55}));
    h.header(kBlkTypeGetId, 0);
    CHECK(h.run({kHeaderBuf, {kDataAddr, 20, true}, kStatusBuf}).len == 21);
    CHECK(h.status() == kBlkStatusOk);
    auto id = read_guest(h.mem, kDataAddr, 20);
    CHECK(std::string(reinterpret_cast<const char*>(id.data()), 7) == "my-disk");
    CHECK(std::all_of(id.begin() + 7, id.end(), [](std::byte b) { return b == std::byte{0}; }));

    // An id longer than 20 bytes is cut at 20, without a terminator.
    Harness h2({disk.path(), false, false, "abcdefghijklmnopqrstuvwxyz"});
    h2.header(kBlkTypeGetId, 0);
    CHECK(h2.run({kHeaderBuf, {kDataAddr, 64, true}, kStatusBuf}).len == 21);
    auto id2 = read_guest(h2.mem, kDataAddr, 20);
    CHECK(std::string(reinterpret_cast<const char*>(id2.data()), 20) == "abcdefghijklmnopqrst");
}

TEST_CASE("virtio-blk read-only disk rejects writes", "[virtio][blk]") {
    TempDisk disk(kDiskBytes);
    Harness h({disk.path(), true, false, "ro"});
    CHECK((h.device->device_features() & BlockDevice::kFeatureReadOnly) != 0);
    auto before = disk.read(0, 1024);
    write_guest(h.mem, kDataAddr, pattern(512, 1));
    h.header(kBlkTypeOut, 0);
    CHECK(h.run({kHeaderBuf, {kDataAddr, 512, false}, kStatusBuf}).len == 1);
    CHECK(h.status() == kBlkStatusIoErr);
    CHECK(disk.read(0, 1024) == before);
    h.header(kBlkTypeIn, 1);
    h.run({kHeaderBuf, {kDataAddr, 512, true}, kStatusBuf});
    CHECK(h.status() == kBlkStatusOk);
    CHECK(read_guest(h.mem, kDataAddr, 512) == disk.read(512, 512));
    CHECK(h.device->counters()["errors"] == 1);
}

TEST_CASE("virtio-blk answers malformed requests with an error status", "[virtio][blk]") {
    TempDisk disk(kDiskBytes);
    Harness h({disk.path(), false, false, "disk0"});
    auto before = disk.read(0, kDiskBytes);
    const uint64_t capacity = kDiskBytes / 512;
    REQUIRE(h.device->capacity_sectors() == capacity);
    BufferSpec in512{kDataAddr, 512, true};

    SECTION("last sector is fine, one past is not") {
        h.header(kBlkTypeIn, capacity - 1);
        h.run({kHeaderBuf, in512, kStatusBuf});
        CHECK(h.status() == kBlkStatusOk);
        h.header(kBlkTypeIn, capacity);
        CHECK(h.run({kHeaderBuf, in512, kStatusBuf}).len == 1);
        CHECK(h.status() == kBlkStatusIoErr);
        h.header(kBlkTypeOut, capacity - 1);
        h.run({kHeaderBuf, {kDataAddr, 1024, false}, kStatusBuf});
        CHECK(h.status() == kBlkStatusIoErr);
    }
    SECTION("overflowing sectors") {
        for (uint64_t sector : {UINT64_MAX, UINT64_MAX / 512 + 1, uint64_t{1} << 63}) {
            h.header(kBlkTypeOut, sector);
            h.run({kHeaderBuf, {kDataAddr, 1024, false}, kStatusBuf});
            CHECK(h.status() == kBlkStatusIoErr);
        }
    }
    SECTION("data not a multiple of 512") {
        h.header(kBlkTypeIn, 0);
        h.run({kHeaderBuf, {kDataAddr, 100, true}, kStatusBuf});
        CHECK(h.status() == kBlkStatusIoErr);
        h.header(kBlkTypeOut, 0);
        h.run({kHeaderBuf, {kDataAddr, 700, false}, kStatusBuf});
        CHECK(h.status() == kBlkStatusIoErr);
    }
    SECTION("header too short or writable") {
        h.header(kBlkTypeIn, 0);
        h.run({{kHeaderAddr, 8, false}, in512, kStatusBuf});
        CHECK(h.status() == kBlkStatusIoErr);
        h.header(kBlkTypeIn, 0);
        h.run({{kHeaderAddr, 16, true}, in512, kStatusBuf});
        CHECK(h.status() == kBlkStatusIoErr);
    }
    SECTION("unknown type") {
        h.header(42, 0);
        CHECK(h.run({kHeaderBuf, in512, kStatusBuf}).len == 1);
        CHECK(h.status() == kBlkStatusUnsupp);
    }
    SECTION("status descriptor not writable: completed with length 0") {
        write_guest(h.mem, kDataAddr, pattern(512, 3));
        h.header(kBlkTypeOut, 0);
        CHECK(h.run({kHeaderBuf, {kDataAddr, 512, false}, {kStatusAddr, 1, false}}).len == 0);
        CHECK(h.status() == 0xee);
    }
    SECTION("read with device-readable data") {
        h.header(kBlkTypeIn, 0);
        h.run({kHeaderBuf, {kDataAddr, 512, false}, in512, kStatusBuf});
        CHECK(h.status() == kBlkStatusIoErr);
    }
    CHECK(disk.read(0, kDiskBytes) == before);
    CHECK(h.device->counters()["errors"] >= 1);
    CHECK(h.irq->needs_reset == 0);
}

TEST_CASE("virtio-blk config space layout", "[virtio][blk]") {
    TempDisk disk(kDiskBytes + 100);  // the tail is not visible
    auto dev = BlockDevice::create({disk.path(), false, false, "x"});
    REQUIRE(dev.has_value());
    uint64_t capacity = 0;
    (*dev)->read_config(0, std::as_writable_bytes(std::span(&capacity, 1)));
    CHECK(capacity == kDiskBytes / 512);
    uint32_t word = 0;
    (*dev)->read_config(12, std::as_writable_bytes(std::span(&word, 1)));
    CHECK(word == BlockDevice::kSegMax);
    (*dev)->read_config(20, std::as_writable_bytes(std::span(&word, 1)));
    CHECK(word == 512);
    uint64_t past = 0xffff;
    (*dev)->read_config(UINT64_MAX - 2, std::as_writable_bytes(std::span(&past, 1)));
    CHECK(past == 0);
    uint64_t features = (*dev)->device_features();
    CHECK((features & kFeatureVersion1) != 0);
    CHECK((features & BlockDevice::kFeatureFlush) != 0);
    CHECK((features & BlockDevice::kFeatureReadOnly) == 0);
    CHECK_FALSE(BlockDevice::create({"/nonexistent/disk.img", false, false, "x"}).has_value());
}

TEST_CASE("virtio-blk activation checks and broken rings", "[virtio][blk]") {
    TempDisk disk(kDiskBytes);
    auto mem = make_test_memory();
    TestRing ring(mem, 16);
    auto irq = std::make_shared<FakeVirtioInterrupt>();
    auto dev = *BlockDevice::create({disk.path(), false, false, "x"});
    ActivateContext none{&mem, {}, kFeatureVersion1, irq};
    CHECK_FALSE(dev->activate(std::move(none)).has_value());
    Queue unready = ring.make_queue();
    unready.set_ready(false);
    CHECK_FALSE(dev->activate({&mem, {unready}, kFeatureVersion1, irq}).has_value());
    REQUIRE(dev->activate({&mem, {ring.make_queue()}, kFeatureVersion1, irq}).has_value());

    // A buffer outside guest RAM is a protocol violation: DEVICE_NEEDS_RESET, and
    // the device stays quiet until reset.
    ring.add_chain({kHeaderBuf, {0x4000'0000, 512, true}, kStatusBuf});
    ring.publish();
    dev->process_queue(0);
    CHECK(irq->needs_reset == 1);
    CHECK(ring.used_idx() == 0);
    dev->process_queue(0);
    CHECK(irq->needs_reset == 1);

    dev->reset();
    dev->process_queue(0);  // not active: no-op
    CHECK(irq->needs_reset == 1);
}
