// Test helpers for virtio devices: a split ring laid out in a test GuestMemory that
// a test drives as the "driver" (add chains, publish them, read the used ring), and
// that hands out a configured Queue for the device under test.
//
// Layout (guest addresses, for the default base 0x10000):
//   desc table  base + 0x00000   (16 * size bytes; size <= 4096)
//   avail ring  base + 0x10000
//   used ring   base + 0x20000
//   indirect tables from base + 0x30000 up to base + 0x70000 (bump allocated)
// so test data buffers should start at kTestDataAddr (1 MiB) or above and the memory
// should be at least 2 MiB (make_test_memory's default).
// Descriptor slots are handed out round-robin and reused without tracking, so keep
// at most `size` descriptors in flight (chains not yet completed) at a time.
// x86 is little-endian, so native-order writes produce the spec's le16/le32/le64.
#pragma once

#include <catch2/catch.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace vmm::devices::virtio::test {

inline constexpr uint64_t kTestDataAddr = 0x100000;  // first address free for buffers

// One region of `size` bytes at guest address 0 (REQUIREs success).
inline memory::GuestMemory make_test_memory(uint64_t size = 2 << 20) {
    memory::GuestRange range{memory::GuestAddress(0), size};
    auto mem = memory::GuestMemory::create(std::span<const memory::GuestRange>(&range, 1));
    REQUIRE(mem.has_value());
    return std::move(mem).value();
}

// Writes / reads plain bytes of guest memory (REQUIREs success).
inline void write_guest(const memory::GuestMemory& mem, uint64_t addr,
                        std::span<const std::byte> data) {
    REQUIRE(mem.write(memory::GuestAddress(addr), data).has_value());
}
inline std::vector<std::byte> read_guest(const memory::GuestMemory& mem, uint64_t addr,
                                         uint64_t len) {
    std::vector<std::byte> out(len);
    REQUIRE(mem.read(memory::GuestAddress(addr), out).has_value());
    return out;
}

struct BufferSpec {
    uint64_t addr = 0;
    uint32_t len = 0;
    bool writable = false;  // device-writable (VIRTQ_DESC_F_WRITE)
};

struct UsedElem {
    uint32_t id = 0;
    uint32_t len = 0;
};

// Raw virtq_desc as it lies in guest memory.
struct RawDesc {
    uint64_t addr = 0;
    uint32_t len = 0;
    uint16_t flags = 0;
    uint16_t next = 0;
};
static_assert(sizeof(RawDesc) == 16);

class TestRing {
public:
    static constexpr uint64_t kDefaultBase = 0x10000;

    TestRing(const memory::GuestMemory& mem, uint16_t size, uint64_t base = kDefaultBase)
        : m_mem(mem), m_size(size), m_desc(base), m_avail(base + 0x10000),
          m_used(base + 0x20000), m_indirect_next(base + 0x30000),
          m_indirect_end(base + 0x70000) {
        REQUIRE(size >= 1);
        REQUIRE(size <= 4096);
        // Zero the rings so that leftovers of an earlier ring never leak in.
        REQUIRE(mem.fill(memory::GuestAddress(base), 0x30000, std::byte{0}).has_value());
    }

    uint16_t size() const { return m_size; }
    uint64_t desc_addr() const { return m_desc; }
    uint64_t avail_addr() const { return m_avail; }
    uint64_t used_addr() const { return m_used; }

    // A Queue configured for this ring (size, addresses, ready). max_size 0 = size.
    Queue make_queue(uint16_t max_size = 0) const {
        Queue q(max_size == 0 ? m_size : max_size);
        q.set_size(m_size);
        q.set_desc_table(memory::GuestAddress(m_desc));
        q.set_avail_ring(memory::GuestAddress(m_avail));
        q.set_used_ring(memory::GuestAddress(m_used));
        q.set_ready(true);
        return q;
    }

    // Writes the buffers as a NEXT-linked chain in free descriptor slots (allocated
    // round-robin), puts the head in the next avail slot and returns it. Call
    // publish() to make it visible to the device.
    uint16_t add_chain(std::initializer_list<BufferSpec> buffers) {
        return add_chain(std::vector<BufferSpec>(buffers));
    }
    uint16_t add_chain(const std::vector<BufferSpec>& buffers) {
        REQUIRE(!buffers.empty());
        REQUIRE(buffers.size() <= m_size);
        std::vector<uint16_t> idx;
        for (size_t i = 0; i < buffers.size(); ++i) idx.push_back(alloc_desc());
        for (size_t i = 0; i < buffers.size(); ++i) {
            bool last = i + 1 == buffers.size();
            uint16_t flags = (buffers[i].writable ? kDescWrite : 0) | (last ? 0 : kDescNext);
            write_desc(idx[i], {buffers[i].addr, buffers[i].len, flags,
                                last ? uint16_t{0} : idx[i + 1]});
        }
        push_avail(idx[0]);
        return idx[0];
    }

    // Same, but the buffers go into an indirect table; the ring gets one descriptor
    // with VIRTQ_DESC_F_INDIRECT. Returns the head.
    uint16_t add_indirect_chain(std::initializer_list<BufferSpec> buffers) {
        std::vector<RawDesc> table;
        size_t n = buffers.size();
        size_t i = 0;
        for (const auto& b : buffers) {
            bool last = i + 1 == n;
            uint16_t flags = (b.writable ? kDescWrite : 0) | (last ? 0 : kDescNext);
            table.push_back({b.addr, b.len, flags, last ? uint16_t{0} : uint16_t(i + 1)});
            ++i;
        }
        uint64_t table_addr = write_indirect_table(table);
        uint16_t head = alloc_desc();
        write_desc(head, {table_addr, static_cast<uint32_t>(16 * n), kDescIndirect, 0});
        push_avail(head);
        return head;
    }

    // --- raw access, for building hostile rings ---
    uint16_t alloc_desc() {
        uint16_t i = m_next_desc;
        m_next_desc = static_cast<uint16_t>((m_next_desc + 1) % m_size);
        return i;
    }
    void write_desc(uint16_t index, const RawDesc& d) {
        REQUIRE(m_mem.write_obj(memory::GuestAddress(m_desc + 16ULL * index), d).has_value());
    }
    // Copies a table into the indirect area and returns its guest address.
    uint64_t write_indirect_table(const std::vector<RawDesc>& table) {
        uint64_t addr = m_indirect_next;
        uint64_t bytes = 16ULL * table.size();
        REQUIRE(addr + bytes <= m_indirect_end);
        if (!table.empty()) {
            write_guest(m_mem, addr, std::as_bytes(std::span(table)));
        }
        m_indirect_next += (bytes + 15) / 16 * 16 + 16;
        return addr;
    }
    // Puts `head` in the next avail slot (not yet published).
    void push_avail(uint16_t head) {
        uint64_t slot = m_avail + 4 + 2ULL * (m_avail_shadow % m_size);
        REQUIRE(m_mem.write_obj(memory::GuestAddress(slot), head).has_value());
        ++m_avail_shadow;
    }
    // Release-stores the avail index covering everything pushed so far.
    void publish() { set_avail_idx(m_avail_shadow); }
    // Writes any avail idx (e.g. far ahead of what was pushed).
    void set_avail_idx(uint16_t idx) {
        REQUIRE(m_mem.store<uint16_t>(memory::GuestAddress(m_avail + 2), idx,
                                      std::memory_order_release)
                    .has_value());
    }
    uint16_t avail_shadow() const { return m_avail_shadow; }

    void set_avail_flags(uint16_t flags) {
        REQUIRE(m_mem.write_obj(memory::GuestAddress(m_avail), flags).has_value());
    }
    // avail->used_event (after ring[size]).
    void set_used_event(uint16_t value) {
        REQUIRE(m_mem.write_obj(memory::GuestAddress(m_avail + 4 + 2ULL * m_size), value)
                    .has_value());
    }

    // --- used ring, as the driver sees it ---
    uint16_t used_flags() const { return read16(m_used); }
    uint16_t used_idx() const {
        auto v = m_mem.load<uint16_t>(memory::GuestAddress(m_used + 2), std::memory_order_acquire);
        REQUIRE(v.has_value());
        return *v;
    }
    // Used element number i (taken mod size, so pass the running used index).
    UsedElem used_elem(uint16_t i) const {
        uint64_t at = m_used + 4 + 8ULL * (i % m_size);
        auto v = m_mem.read_obj<UsedElem>(memory::GuestAddress(at));
        REQUIRE(v.has_value());
        return *v;
    }
    // used->avail_event (after ring[size]), written by the device under EVENT_IDX.
    uint16_t avail_event() const { return read16(m_used + 4 + 8ULL * m_size); }

private:
    uint16_t read16(uint64_t addr) const {
        auto v = m_mem.read_obj<uint16_t>(memory::GuestAddress(addr));
        REQUIRE(v.has_value());
        return *v;
    }

    const memory::GuestMemory& m_mem;
    uint16_t m_size;
    uint64_t m_desc;
    uint64_t m_avail;
    uint64_t m_used;
    uint64_t m_indirect_next;
    uint64_t m_indirect_end;
    uint16_t m_next_desc = 0;
    uint16_t m_avail_shadow = 0;
};

}  // namespace vmm::devices::virtio::test
