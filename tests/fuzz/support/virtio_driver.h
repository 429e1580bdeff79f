// A hostile virtio "guest driver" for the device fuzz targets. It talks to a real
// device through the real virtio-mmio transport (register writes, QueueNotify) and
// lays out split rings in a real GuestMemory, driven by a program read from the
// fuzz input:
//
//   header  u8 flags        bit0: bring the device up (ACKNOWLEDGE .. DRIVER_OK)
//                           bit1: accept EVENT_IDX, bit2: accept INDIRECT_DESC
//           u32 features    device-specific feature bits (0..31) to accept
//           u8  size_log2   each queue's size: min(max, 1 << (size_log2 % 9))
//   then ops, each an u8 opcode (mod kOpCount) and its operands:
//     0 mem_write   u32 addr, u8 len, len bytes          raw guest RAM write
//     1 desc        u8 queue, u16 index, u32 addr, u32 len, u16 flags, u16 next
//     2 avail       u8 queue, u16 head                    push + publish one head
//     3 kick        u8 queue                              QueueNotify
//     4 mmio_write  u16 offset, u8 size_sel, u64 value    any register, any size
//     5 mmio_read   u16 offset, u8 size_sel
//     6 chain       u8 queue, u8 n, n x {u32 addr, u32 len, u8 writable}; publish + kick
//     7 indirect    u8 queue, u8 n, n x {...}; one INDIRECT descriptor; publish + kick
//     8 device      u8 sub-op, then whatever the target's hook reads
//     9 reset       status 0, then the bring-up again when header bit0 was set
//    10 avail_idx   u8 queue, u16 idx                     any avail idx (e.g. far ahead)
//    11 irq_ack     reads InterruptStatus and acknowledges it
//
// Ring placement (guest addresses): queue q uses desc at 0x10000 + q * 0x4000,
// avail +0x1000, used +0x2000, its indirect tables at +0x3000. Buffers anywhere,
// conventionally from kDataBase.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "devices/virtio/mmio_transport.h"
#include "devices/virtio/virtio_device.h"
#include "fuzz_input.h"
#include "memory/guest_memory.h"

namespace vmm::fuzz {

inline constexpr uint64_t kRingBase = 0x10000;
inline constexpr uint64_t kRingStride = 0x4000;
inline constexpr uint64_t kDataBase = 0x80000;
inline constexpr size_t kMaxQueues = 12;  // rings must stay below kDataBase
inline constexpr unsigned kOpCount = 12;
inline constexpr unsigned kMaxOps = 1024;

// Guest RAM of the device targets: two adjacent 1 MiB regions (a buffer may span
// them, a slice may not) and a small one after a hole.
inline const std::vector<memory::GuestRange> kDeviceLayout = {
    {memory::GuestAddress(0), 1 << 20},
    {memory::GuestAddress(1 << 20), 1 << 20},
    {memory::GuestAddress(3 << 20), 64 << 10}};

// Fires nothing; counts edges (the transport raises its line outside its lock).
class CountingLine final : public devices::InterruptLine {
public:
    void trigger() override { ++triggers; }
    uint64_t triggers = 0;
};

// One buffer of a chain the harness posts.
struct FuzzBuffer {
    uint64_t addr = 0;
    uint32_t len = 0;
    bool writable = false;
};

class VirtioFuzzDriver {
public:
    // Called for op 8 with the sub-op byte; reads its own operands from `in`.
    using DeviceOp = std::function<void(uint8_t sub_op, FuzzInput& in)>;

    VirtioFuzzDriver(std::shared_ptr<devices::virtio::VirtioDevice> device,
                     const memory::GuestMemory& mem);

    // Runs the whole program in `in`, then resets the device (status 0).
    void run(FuzzInput& in, const DeviceOp& device_op = {});

    // Writes the buffers as one chain (NEXT-linked descriptors, or one INDIRECT
    // descriptor and a table), publishes it on queue q and notifies. Ignored for a
    // queue the device does not have.
    void post_chain(size_t q, std::span<const FuzzBuffer> buffers, bool indirect);

    devices::virtio::MmioTransport& transport() { return *m_transport; }
    const memory::GuestMemory& memory() const { return m_mem; }
    static uint64_t desc_addr(size_t q) { return kRingBase + kRingStride * q; }
    static uint64_t avail_addr(size_t q) { return desc_addr(q) + 0x1000; }
    static uint64_t used_addr(size_t q) { return desc_addr(q) + 0x2000; }
    static uint64_t indirect_addr(size_t q) { return desc_addr(q) + 0x3000; }

private:
    struct RingState {
        uint16_t size = 0;
        uint16_t avail_shadow = 0;
        uint16_t next_desc = 0;
    };

    void bring_up();
    void op(uint8_t code, FuzzInput& in, const DeviceOp& device_op);
    void mmio_write32(uint64_t offset, uint32_t value);
    uint32_t mmio_read32(uint64_t offset);
    void push_avail(size_t q, uint16_t head);
    void write_desc(uint64_t at, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
    void chain(FuzzInput& in, bool indirect);
    size_t queue_operand(FuzzInput& in) const;

    std::shared_ptr<devices::virtio::VirtioDevice> m_device;
    const memory::GuestMemory& m_mem;
    std::shared_ptr<CountingLine> m_line;
    std::unique_ptr<devices::virtio::MmioTransport> m_transport;
    std::vector<uint16_t> m_max_sizes;
    std::vector<RingState> m_rings;
    uint8_t m_flags = 0;
    uint32_t m_features_low = 0;
    uint8_t m_size_log2 = 0;
};

}  // namespace vmm::fuzz
