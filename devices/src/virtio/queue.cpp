// Split virtqueue, device side (virtio 1.2 §2.7). Ring layout in guest memory:
//   desc  [size] x {le64 addr, le32 len, le16 flags, le16 next}
//   avail {le16 flags, le16 idx, le16 ring[size], le16 used_event}
//   used  {le16 flags, le16 idx, {le32 id, le32 len}[size], le16 avail_event}
// The host is x86_64 (little-endian), so the fields are read in native order.
#include "devices/virtio/queue.h"

#include <atomic>
#include <bit>

namespace vmm::devices::virtio {

using memory::GuestAddress;
using memory::GuestMemory;

namespace {

constexpr uint16_t kAvailFNoInterrupt = 1;  // VIRTQ_AVAIL_F_NO_INTERRUPT
constexpr uint64_t kDescSize = 16;
constexpr uint64_t kUsedElemSize = 8;
constexpr uint64_t kRingHeader = 4;  // flags + idx

struct RawDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
static_assert(sizeof(RawDesc) == kDescSize);

struct UsedElem {
    uint32_t id;
    uint32_t len;
};
static_assert(sizeof(UsedElem) == kUsedElemSize);

// Walks one chain, copying every descriptor out of guest memory exactly once, so the
// guest cannot change a descriptor between our check and the device's use of it.
class ChainWalker {
public:
    ChainWalker(const GuestMemory& mem, GuestAddress table, uint16_t size, bool indirect_allowed)
        : m_mem(mem), m_table(table), m_size(size), m_indirect_allowed(indirect_allowed) {}

    Result<std::vector<Descriptor>> walk(uint16_t head) {
        if (head >= m_size) {
            return Error::msg("virtqueue: head index {} out of range (queue size {})", head,
                              m_size);
        }
        uint16_t index = head;
        // Each of the `size` table entries can appear at most once in a chain without
        // a loop, so more steps than that is a loop.
        for (uint32_t steps = 1;; ++steps) {
            if (steps > m_size) {
                return Error::msg("virtqueue: descriptor loop in chain at head {}", head);
            }
            RawDesc d = VMM_TRY_CTX(m_mem.read_obj<RawDesc>(m_table.unchecked_add(kDescSize * index)),
                                    "virtqueue: reading descriptor");
            if (d.flags & kDescIndirect) {
                VMM_TRY(walk_indirect(d));
                return std::move(m_out);
            }
            VMM_TRY(add(d));
            if (!(d.flags & kDescNext)) return std::move(m_out);
            if (d.next >= m_size) {
                return Error::msg("virtqueue: next index {} out of range (queue size {})", d.next,
                                  m_size);
            }
            index = d.next;
        }
    }

private:
    Result<void> walk_indirect(const RawDesc& d) {
        if (!m_indirect_allowed) {
            return Error("virtqueue: indirect descriptor but VIRTIO_F_INDIRECT_DESC not negotiated");
        }
        if (d.flags & kDescNext) {
            return Error("virtqueue: indirect descriptor must not have NEXT set");
        }
        if (d.len == 0 || d.len % kDescSize != 0) {
            return Error::msg("virtqueue: indirect table length {} is not a non-zero multiple of 16",
                              d.len);
        }
        uint32_t count = d.len / kDescSize;
        if (count > Queue::kMaxChainLength) {
            return Error::msg("virtqueue: indirect table of {} entries exceeds the limit {}", count,
                              Queue::kMaxChainLength);
        }
        // One bounded copy of the whole table (read() checks it lies in RAM).
        std::vector<RawDesc> table(count);
        VMM_TRY_CTX(m_mem.read(GuestAddress(d.addr), std::as_writable_bytes(std::span(table))),
                    "virtqueue: reading indirect table");
        uint32_t index = 0;
        for (uint32_t steps = 1;; ++steps) {
            if (steps > count) return Error("virtqueue: descriptor loop in indirect table");
            const RawDesc& e = table[index];
            if (e.flags & kDescIndirect) return Error("virtqueue: nested indirect descriptor");
            VMM_TRY(add(e));
            if (!(e.flags & kDescNext)) return ok();
            if (e.next >= count) {
                return Error::msg("virtqueue: indirect next index {} out of range ({} entries)",
                                  e.next, count);
            }
            index = e.next;
        }
    }

    Result<void> add(const RawDesc& d) {
        if (m_out.size() >= Queue::kMaxChainLength) {
            return Error::msg("virtqueue: chain longer than {} descriptors", Queue::kMaxChainLength);
        }
        // contains() is overflow-safe and rejects holes and the end of RAM. A zero-length
        // buffer is kept (its address must still be RAM); devices simply see len 0.
        if (!m_mem.contains(GuestAddress(d.addr), d.len)) {
            return Error::msg("virtqueue: buffer {:#x}+{:#x} is not inside guest RAM", d.addr,
                              d.len);
        }
        bool writable = (d.flags & kDescWrite) != 0;
        if (!writable && m_seen_writable) {
            return Error("virtqueue: device-readable descriptor after a device-writable one");
        }
        m_seen_writable = m_seen_writable || writable;
        m_out.push_back({GuestAddress(d.addr), d.len, writable});
        return ok();
    }

    const GuestMemory& m_mem;
    GuestAddress m_table;
    uint16_t m_size;
    bool m_indirect_allowed;
    bool m_seen_writable = false;
    std::vector<Descriptor> m_out;
};

// [addr, addr+len) lies in RAM and `addr` has the given alignment.
Result<void> check_ring(const GuestMemory& mem, const char* name, GuestAddress addr,
                        uint64_t align, uint64_t len) {
    if (addr.raw % align != 0) {
        return Error::msg("virtqueue: {} at {:#x} is not {}-byte aligned", name, addr.raw, align);
    }
    if (!mem.contains(addr, len)) {
        return Error::msg("virtqueue: {} at {:#x} ({:#x} bytes) is not inside guest RAM", name,
                          addr.raw, len);
    }
    return ok();
}

}  // namespace

uint64_t DescriptorChain::readable_bytes() const {
    uint64_t n = 0;
    for (const auto& d : m_descriptors) n += d.device_writable ? 0 : d.len;
    return n;
}

uint64_t DescriptorChain::writable_bytes() const {
    uint64_t n = 0;
    for (const auto& d : m_descriptors) n += d.device_writable ? d.len : 0;
    return n;
}

Result<void> Queue::validate(const GuestMemory& mem) const {
    if (m_size == 0 || !std::has_single_bit(m_size)) {
        return Error::msg("virtqueue: size {} is not a power of two", m_size);
    }
    if (m_size > m_max_size) {
        return Error::msg("virtqueue: size {} exceeds the maximum {}", m_size, m_max_size);
    }
    // Sizes include the event-index words, which exist whether or not EVENT_IDX is used.
    uint64_t n = m_size;
    VMM_TRY(check_ring(mem, "descriptor table", m_desc_table, 16, kDescSize * n));
    VMM_TRY(check_ring(mem, "available ring", m_avail_ring, 2, kRingHeader + 2 * n + 2));
    VMM_TRY(check_ring(mem, "used ring", m_used_ring, 4, kRingHeader + kUsedElemSize * n + 2));
    return ok();
}

Result<uint16_t> Queue::pending(const GuestMemory& mem) const {
    if (m_size == 0) return Error("virtqueue: size is 0");
    uint16_t avail_idx = VMM_TRY_CTX(
        mem.load<uint16_t>(m_avail_ring.unchecked_add(2), std::memory_order_acquire),
        "virtqueue: reading avail idx");
    auto count = static_cast<uint16_t>(avail_idx - m_next_avail);
    if (count > m_size) {
        return Error::msg("virtqueue: avail idx {} is {} ahead of {}, more than the queue size {}",
                          avail_idx, count, m_next_avail, m_size);
    }
    return count;
}

Result<std::optional<DescriptorChain>> Queue::pop(const GuestMemory& mem) {
    if (!m_ready) return std::optional<DescriptorChain>{};
    // The acquire load in pending() orders the ring-entry and descriptor reads after it.
    uint16_t count = VMM_TRY(pending(mem));
    if (count == 0) {
        VMM_TRY(publish_avail_event(mem));
        return std::optional<DescriptorChain>{};
    }
    GuestAddress slot = m_avail_ring.unchecked_add(kRingHeader + 2ULL * (m_next_avail % m_size));
    uint16_t head = VMM_TRY_CTX(mem.read_obj<uint16_t>(slot), "virtqueue: reading avail ring");
    // On error next_avail stays put: the queue is broken and the device asks for a reset.
    ChainWalker walker(mem, m_desc_table, m_size, m_indirect_allowed);
    std::vector<Descriptor> descriptors = VMM_TRY(walker.walk(head));
    ++m_next_avail;
    VMM_TRY(publish_avail_event(mem));
    return std::optional<DescriptorChain>(DescriptorChain(head, std::move(descriptors)));
}

Result<void> Queue::publish_avail_event(const GuestMemory& mem) const {
    if (!m_event_idx) return ok();
    // "Notify me when you make entry next_avail available." The full fence orders this
    // store before the next avail-idx load, so a kick raced with our going idle is
    // never lost (the driver reads avail_event after publishing its idx).
    GuestAddress at = m_used_ring.unchecked_add(kRingHeader + kUsedElemSize * m_size);
    VMM_TRY_CTX(mem.store<uint16_t>(at, m_next_avail, std::memory_order_relaxed),
                "virtqueue: writing avail_event");
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return ok();
}

void Queue::undo_pop() { --m_next_avail; }

Result<void> Queue::add_used(const GuestMemory& mem, uint16_t head, uint32_t len) {
    if (m_size == 0) return Error("virtqueue: size is 0");
    if (head >= m_size) {
        return Error::msg("virtqueue: used id {} out of range (queue size {})", head, m_size);
    }
    GuestAddress elem = m_used_ring.unchecked_add(kRingHeader + kUsedElemSize * (m_next_used % m_size));
    VMM_TRY_CTX(mem.write_obj(elem, UsedElem{head, len}), "virtqueue: writing used element");
    ++m_next_used;
    // Release: the driver that sees the new idx also sees the element (and the data
    // the device wrote into the buffers before calling add_used).
    VMM_TRY_CTX(mem.store<uint16_t>(m_used_ring.unchecked_add(2), m_next_used,
                                    std::memory_order_release),
                "virtqueue: writing used idx");
    return ok();
}

Result<bool> Queue::needs_notification(const GuestMemory& mem) {
    if (m_size == 0) return Error("virtqueue: size is 0");
    // Order our used-idx store before reading the driver's flags/used_event: otherwise
    // the driver could re-enable interrupts after we read the old value, and wait forever.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!m_event_idx) {
        uint16_t flags = VMM_TRY_CTX(mem.load<uint16_t>(m_avail_ring, std::memory_order_relaxed),
                                     "virtqueue: reading avail flags");
        return (flags & kAvailFNoInterrupt) == 0;
    }
    GuestAddress at = m_avail_ring.unchecked_add(kRingHeader + 2ULL * m_size);
    uint16_t used_event = VMM_TRY_CTX(mem.load<uint16_t>(at, std::memory_order_relaxed),
                                      "virtqueue: reading used_event");
    uint16_t old_used = m_signalled_used;
    bool was_valid = m_signalled_valid;
    m_signalled_used = m_next_used;
    m_signalled_valid = true;
    // The first decision after activation has no "old" to compare with: notify.
    if (!was_valid) return true;
    // Linux's vring_need_event: interrupt iff used_event lies in [old_used, new_used).
    auto since_event = static_cast<uint16_t>(m_next_used - used_event - 1);
    auto added = static_cast<uint16_t>(m_next_used - old_used);
    return since_event < added;
}

void Queue::reset() {
    m_size = m_max_size;
    m_ready = false;
    m_desc_table = {};
    m_avail_ring = {};
    m_used_ring = {};
    m_event_idx = false;
    m_indirect_allowed = false;
    m_next_avail = 0;
    m_next_used = 0;
    m_signalled_used = 0;
    m_signalled_valid = false;
}

}  // namespace vmm::devices::virtio
