// The driver side of one split virtqueue, for benchmarks. A minimal copy of the
// ring-writing logic of tests/unit/devices/virtio/virtio_test_support.h, which
// cannot be used here because it depends on Catch2. Every chain is a single
// read-only descriptor, and all chains of a batch are completed by the device
// before the next batch is written, so descriptor slot = avail index % size.
// x86_64 is little-endian: native writes are the spec's le16/le32/le64.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/result.h"
#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace vmm::bench {

class BenchRing {
public:
    // Layout from `base`: descriptor table, avail ring at +4 KiB, used ring at +8 KiB
    // (enough for size <= 256).
    BenchRing(const memory::GuestMemory& mem, uint16_t size, uint64_t base)
        : m_mem(mem), m_size(size), m_desc(base), m_avail(base + 0x1000),
          m_used(base + 0x2000) {}

    [[nodiscard]] Result<void> zero() const {
        return m_mem.fill(memory::GuestAddress(m_desc), 0x3000, std::byte{0});
    }

    devices::virtio::Queue make_queue() const {
        devices::virtio::Queue q(m_size);
        q.set_size(m_size);
        q.set_desc_table(memory::GuestAddress(m_desc));
        q.set_avail_ring(memory::GuestAddress(m_avail));
        q.set_used_ring(memory::GuestAddress(m_used));
        q.set_ready(true);
        return q;
    }

    // One chain of one device-readable buffer; visible to the device after publish().
    [[nodiscard]] Result<void> add(uint64_t addr, uint32_t len) {
        struct RawDesc {
            uint64_t addr;
            uint32_t len;
            uint16_t flags;
            uint16_t next;
        } desc{addr, len, 0, 0};
        static_assert(sizeof(RawDesc) == 16);
        auto slot = static_cast<uint16_t>(m_avail_shadow % m_size);
        VMM_TRY(m_mem.write_obj(memory::GuestAddress(m_desc + 16ULL * slot), desc));
        VMM_TRY(m_mem.write_obj(memory::GuestAddress(m_avail + 4 + 2ULL * slot), slot));
        ++m_avail_shadow;
        return ok();
    }

    [[nodiscard]] Result<void> publish() const {
        return m_mem.store<uint16_t>(memory::GuestAddress(m_avail + 2), m_avail_shadow,
                                     std::memory_order_release);
    }
    uint16_t avail_idx() const { return m_avail_shadow; }
    [[nodiscard]] Result<uint16_t> used_idx() const {
        return m_mem.load<uint16_t>(memory::GuestAddress(m_used + 2), std::memory_order_acquire);
    }

private:
    const memory::GuestMemory& m_mem;
    uint16_t m_size;
    uint64_t m_desc;
    uint64_t m_avail;
    uint64_t m_used;
    uint16_t m_avail_shadow = 0;
};

}  // namespace vmm::bench
