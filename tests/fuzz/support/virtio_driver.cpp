#include "virtio_driver.h"

#include <algorithm>
#include <array>
#include <atomic>

#include "fuzz_common.h"

namespace vmm::fuzz {

namespace dv = devices::virtio;
using memory::GuestAddress;

namespace {

// virtio-mmio registers (virtio 1.2 §4.2.2) as a driver sees them.
constexpr uint64_t kDeviceFeatures = 0x010;
constexpr uint64_t kDeviceFeaturesSel = 0x014;
constexpr uint64_t kDriverFeatures = 0x020;
constexpr uint64_t kDriverFeaturesSel = 0x024;
constexpr uint64_t kQueueSel = 0x030;
constexpr uint64_t kQueueNumMax = 0x034;
constexpr uint64_t kQueueNum = 0x038;
constexpr uint64_t kQueueReady = 0x044;
constexpr uint64_t kInterruptStatus = 0x060;
constexpr uint64_t kInterruptAck = 0x064;
constexpr uint64_t kStatus = 0x070;
constexpr uint64_t kQueueDescLow = 0x080;
constexpr uint64_t kQueueDriverLow = 0x090;
constexpr uint64_t kQueueDeviceLow = 0x0a0;

constexpr uint32_t kAcknowledge = 1;
constexpr uint32_t kDriver = 2;
constexpr uint32_t kDriverOk = 4;
constexpr uint32_t kFeaturesOk = 8;

constexpr std::array<size_t, 4> kAccessSizes = {1, 2, 4, 8};
constexpr unsigned kMaxChain = 16;

}  // namespace

VirtioFuzzDriver::VirtioFuzzDriver(std::shared_ptr<dv::VirtioDevice> device,
                                   const memory::GuestMemory& mem)
    : m_device(std::move(device)), m_mem(mem), m_line(std::make_shared<CountingLine>()) {
    m_transport = std::make_unique<dv::MmioTransport>(m_device, m_mem, m_line);
    m_max_sizes = m_device->queue_max_sizes();
    FUZZ_CHECK_MSG(m_max_sizes.size() <= kMaxQueues, "harness: too many queues for the layout");
    m_rings.resize(m_max_sizes.size());
}

void VirtioFuzzDriver::mmio_write32(uint64_t offset, uint32_t value) {
    m_transport->write(offset, std::as_bytes(std::span(&value, 1)));
}

uint32_t VirtioFuzzDriver::mmio_read32(uint64_t offset) {
    uint32_t value = 0;
    m_transport->read(offset, std::as_writable_bytes(std::span(&value, 1)));
    return value;
}

// The Linux driver's sequence (virtio 1.2 §3.1.1), with what the header chose.
void VirtioFuzzDriver::bring_up() {
    mmio_write32(kStatus, 0);
    mmio_write32(kStatus, kAcknowledge);
    mmio_write32(kStatus, kAcknowledge | kDriver);
    mmio_write32(kDeviceFeaturesSel, 0);
    uint64_t offered = mmio_read32(kDeviceFeatures);
    mmio_write32(kDeviceFeaturesSel, 1);
    offered |= uint64_t{mmio_read32(kDeviceFeatures)} << 32;
    uint64_t wanted = dv::kFeatureVersion1 | m_features_low;
    if (m_flags & 2) wanted |= dv::kFeatureEventIdx;
    if (m_flags & 4) wanted |= dv::kFeatureIndirectDesc;
    uint64_t accepted = offered & wanted;
    mmio_write32(kDriverFeaturesSel, 0);
    mmio_write32(kDriverFeatures, static_cast<uint32_t>(accepted));
    mmio_write32(kDriverFeaturesSel, 1);
    mmio_write32(kDriverFeatures, static_cast<uint32_t>(accepted >> 32));
    mmio_write32(kStatus, kAcknowledge | kDriver | kFeaturesOk);
    if ((mmio_read32(kStatus) & kFeaturesOk) == 0) return;  // refused: the driver gives up

    for (size_t q = 0; q < m_rings.size(); ++q) {
        mmio_write32(kQueueSel, static_cast<uint32_t>(q));
        uint32_t max = mmio_read32(kQueueNumMax);
        FUZZ_CHECK(max == m_max_sizes[q]);
        uint32_t size = std::min<uint32_t>(max, 1u << (m_size_log2 % 9));
        m_rings[q] = RingState{static_cast<uint16_t>(size), 0, 0};
        // Fresh rings: leftovers of an earlier driver must not leak in.
        (void)m_mem.fill(GuestAddress(desc_addr(q)), kRingStride, std::byte{0});
        mmio_write32(kQueueNum, size);
        mmio_write32(kQueueDescLow, static_cast<uint32_t>(desc_addr(q)));
        mmio_write32(kQueueDriverLow, static_cast<uint32_t>(avail_addr(q)));
        mmio_write32(kQueueDeviceLow, static_cast<uint32_t>(used_addr(q)));
        mmio_write32(kQueueReady, 1);
    }
    mmio_write32(kStatus, kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
}

size_t VirtioFuzzDriver::queue_operand(FuzzInput& in) const {
    // One past the last queue is kept reachable: notifying a queue that does not
    // exist is something a guest can do.
    return in.u8() % (m_rings.size() + 1);
}

void VirtioFuzzDriver::write_desc(uint64_t at, uint64_t addr, uint32_t len, uint16_t flags,
                                  uint16_t next) {
    struct {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
    } raw{addr, len, flags, next};
    (void)m_mem.write_obj(GuestAddress(at), raw);
}

void VirtioFuzzDriver::push_avail(size_t q, uint16_t head) {
    if (q >= m_rings.size()) return;
    RingState& r = m_rings[q];
    uint16_t size = std::max<uint16_t>(r.size, 1);
    (void)m_mem.write_obj(GuestAddress(avail_addr(q) + 4 + 2ull * (r.avail_shadow % size)), head);
    ++r.avail_shadow;
    (void)m_mem.store<uint16_t>(GuestAddress(avail_addr(q) + 2), r.avail_shadow,
                                std::memory_order_release);
}

void VirtioFuzzDriver::chain(FuzzInput& in, bool indirect) {
    size_t q = queue_operand(in);
    std::vector<FuzzBuffer> buffers(1 + in.u8() % kMaxChain);
    for (FuzzBuffer& b : buffers) {
        b.addr = in.u32();
        b.len = in.u32();
        b.writable = in.flag();
    }
    post_chain(q, buffers, indirect);
}

void VirtioFuzzDriver::post_chain(size_t q, std::span<const FuzzBuffer> buffers, bool indirect) {
    if (q >= m_rings.size() || buffers.empty()) return;
    size_t n = std::min<size_t>(buffers.size(), 256);  // the indirect area holds 256
    RingState& r = m_rings[q];
    uint16_t size = std::max<uint16_t>(r.size, 1);
    auto flags_of = [&](size_t i) {
        uint16_t f = buffers[i].writable ? dv::kDescWrite : 0;
        return static_cast<uint16_t>(i + 1 < n ? f | dv::kDescNext : f);
    };
    uint16_t head = 0;
    if (indirect) {
        for (size_t i = 0; i < n; ++i) {
            write_desc(indirect_addr(q) + 16 * i, buffers[i].addr, buffers[i].len, flags_of(i),
                       static_cast<uint16_t>(i + 1));
        }
        head = static_cast<uint16_t>(r.next_desc++ % size);
        write_desc(desc_addr(q) + 16ull * head, indirect_addr(q), static_cast<uint32_t>(16 * n),
                   dv::kDescIndirect, 0);
    } else {
        std::vector<uint16_t> slots(n);
        for (uint16_t& s : slots) s = static_cast<uint16_t>(r.next_desc++ % size);
        for (size_t i = 0; i < n; ++i) {
            write_desc(desc_addr(q) + 16ull * slots[i], buffers[i].addr, buffers[i].len,
                       flags_of(i), i + 1 < n ? slots[i + 1] : 0);
        }
        head = slots[0];
    }
    push_avail(q, head);
    mmio_write32(dv::kMmioQueueNotifyOffset, static_cast<uint32_t>(q));
}

void VirtioFuzzDriver::op(uint8_t code, FuzzInput& in, const DeviceOp& device_op) {
    switch (code % kOpCount) {
        case 0: {  // mem_write
            uint32_t addr = in.u32();
            auto data = in.bytes(in.u8());
            (void)m_mem.write(GuestAddress(addr), data);
            break;
        }
        case 1: {  // desc
            size_t q = queue_operand(in);
            uint16_t index = in.u16();
            uint32_t addr = in.u32();
            uint32_t len = in.u32();
            uint16_t flags = in.u16();
            uint16_t next = in.u16();
            if (q < m_rings.size()) {
                uint16_t size = std::max<uint16_t>(m_rings[q].size, 1);
                write_desc(desc_addr(q) + 16ull * (index % size), addr, len, flags, next);
            }
            break;
        }
        case 2: {  // avail
            size_t q = queue_operand(in);
            push_avail(q, in.u16());
            break;
        }
        case 3: {  // kick
            mmio_write32(dv::kMmioQueueNotifyOffset, static_cast<uint32_t>(queue_operand(in)));
            break;
        }
        case 4: {  // mmio_write
            uint64_t offset = in.u16() % dv::kMmioSlotSize;
            size_t size = kAccessSizes[in.u8() % kAccessSizes.size()];
            uint64_t value = in.u64();
            m_transport->write(offset, std::as_bytes(std::span(&value, 1)).first(size));
            break;
        }
        case 5: {  // mmio_read
            uint64_t offset = in.u16() % dv::kMmioSlotSize;
            size_t size = kAccessSizes[in.u8() % kAccessSizes.size()];
            uint64_t value = 0;
            m_transport->read(offset, std::as_writable_bytes(std::span(&value, 1)).first(size));
            break;
        }
        case 6: chain(in, false); break;
        case 7: chain(in, true); break;
        case 8: {
            uint8_t sub = in.u8();
            if (device_op) device_op(sub, in);
            break;
        }
        case 9: {  // reset
            mmio_write32(kStatus, 0);
            if (m_flags & 1) bring_up();
            break;
        }
        case 10: {  // avail_idx
            size_t q = queue_operand(in);
            uint16_t idx = in.u16();
            if (q < m_rings.size()) {
                m_rings[q].avail_shadow = idx;
                (void)m_mem.store<uint16_t>(GuestAddress(avail_addr(q) + 2), idx,
                                            std::memory_order_release);
            }
            break;
        }
        case 11: {  // irq_ack
            mmio_write32(kInterruptAck, mmio_read32(kInterruptStatus));
            break;
        }
    }
}

void VirtioFuzzDriver::run(FuzzInput& in, const DeviceOp& device_op) {
    m_flags = in.u8();
    m_features_low = in.u32();
    m_size_log2 = in.u8();
    if (m_flags & 1) bring_up();
    for (unsigned i = 0; i < kMaxOps && !in.empty(); ++i) op(in.u8(), in, device_op);
    // The driver goes away: the device must drop everything it holds.
    mmio_write32(kStatus, 0);
    FUZZ_CHECK(!m_transport->activated());
    FUZZ_CHECK(m_transport->status() == 0);
}

}  // namespace vmm::fuzz
