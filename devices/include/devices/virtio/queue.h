// A split virtqueue (virtio 1.2 §2.7). The Queue holds only state (what the
// transport configured plus the device's ring positions); guest memory is passed to
// every call. Everything read from the rings is untrusted: indices are checked
// against the queue size, chains are bounded, every (addr, len) must lie in guest
// RAM, and any violation is an Error the device answers with DEVICE_NEEDS_RESET.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "common/result.h"
#include "memory/guest_memory.h"

namespace vmm::devices::virtio {

// Descriptor flags (virtq_desc.flags).
inline constexpr uint16_t kDescNext = 1;
inline constexpr uint16_t kDescWrite = 2;
inline constexpr uint16_t kDescIndirect = 4;

// One buffer of a chain, already checked to lie in guest RAM.
struct Descriptor {
    memory::GuestAddress addr;
    uint32_t len = 0;
    bool device_writable = false;  // VIRTQ_DESC_F_WRITE
};

// A validated descriptor chain: all descriptors copied out of guest memory (the
// guest cannot change them afterwards), indirect tables resolved.
class DescriptorChain {
public:
    DescriptorChain(uint16_t head, std::vector<Descriptor> descriptors)
        : m_head(head), m_descriptors(std::move(descriptors)) {}
    uint16_t head() const { return m_head; }
    std::span<const Descriptor> descriptors() const { return m_descriptors; }
    // Sum of lengths of the device-readable (resp. -writable) descriptors.
    uint64_t readable_bytes() const;
    uint64_t writable_bytes() const;

private:
    uint16_t m_head;
    std::vector<Descriptor> m_descriptors;
};

class Queue {
public:
    // Longest chain accepted, also the bound for indirect tables: a loop in the
    // guest's descriptors therefore ends in an error, never a hang.
    static constexpr uint32_t kMaxChainLength = 1024;

    explicit Queue(uint16_t max_size) : m_max_size(max_size), m_size(max_size) {}

    // --- configuration, written by the transport before DRIVER_OK ---
    uint16_t max_size() const { return m_max_size; }
    uint16_t size() const { return m_size; }
    void set_size(uint16_t size) { m_size = size; }
    bool ready() const { return m_ready; }
    void set_ready(bool ready) { m_ready = ready; }
    memory::GuestAddress desc_table() const { return m_desc_table; }
    memory::GuestAddress avail_ring() const { return m_avail_ring; }
    memory::GuestAddress used_ring() const { return m_used_ring; }
    void set_desc_table(memory::GuestAddress a) { m_desc_table = a; }
    void set_avail_ring(memory::GuestAddress a) { m_avail_ring = a; }
    void set_used_ring(memory::GuestAddress a) { m_used_ring = a; }
    // Set at activation from the negotiated features.
    void set_event_idx(bool enabled) { m_event_idx = enabled; }
    void set_indirect_allowed(bool allowed) { m_indirect_allowed = allowed; }

    // Checks the configuration against guest memory: size a power of two and
    // <= max_size, ring alignment (16/2/4), all three rings inside guest RAM.
    [[nodiscard]] Result<void> validate(const memory::GuestMemory& mem) const;

    // --- device side, after activation ---
    // The next available chain, nullopt when the ring is empty. An Error means the
    // guest broke the protocol (bad index, loop, out-of-RAM buffer, ...).
    [[nodiscard]] Result<std::optional<DescriptorChain>> pop(const memory::GuestMemory& mem);
    // Puts `head` back so the next pop() returns it again (e.g. out of host space).
    void undo_pop();
    // Writes a used element and publishes the new used index (release order).
    [[nodiscard]] Result<void> add_used(const memory::GuestMemory& mem, uint16_t head, uint32_t len);
    // Whether the driver wants an interrupt for what was added since the last call
    // (VIRTIO_F_EVENT_IDX's used_event, or VIRTQ_AVAIL_F_NO_INTERRUPT).
    [[nodiscard]] Result<bool> needs_notification(const memory::GuestMemory& mem);
    // Number of chains the driver has made available and we have not popped.
    [[nodiscard]] Result<uint16_t> pending(const memory::GuestMemory& mem) const;

    uint16_t next_avail() const { return m_next_avail; }
    uint16_t next_used() const { return m_next_used; }
    // Back to the state after construction (device reset).
    void reset();

private:
    // Under EVENT_IDX: used->avail_event = next_avail, then a full fence.
    [[nodiscard]] Result<void> publish_avail_event(const memory::GuestMemory& mem) const;

    uint16_t m_max_size;
    uint16_t m_size;
    bool m_ready = false;
    memory::GuestAddress m_desc_table;
    memory::GuestAddress m_avail_ring;
    memory::GuestAddress m_used_ring;
    bool m_event_idx = false;
    bool m_indirect_allowed = false;
    uint16_t m_next_avail = 0;
    uint16_t m_next_used = 0;
    uint16_t m_signalled_used = 0;  // next_used at the last notification decision
    bool m_signalled_valid = false;
};

}  // namespace vmm::devices::virtio
