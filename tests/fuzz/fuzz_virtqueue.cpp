// The split virtqueue (devices/virtio/queue.h) against a hostile driver: the queue
// configuration, the rings and the descriptors all come from the input. Besides
// memory safety, checks
//   - pop() agrees with a plain re-implementation of the chain rules below
//     (same buffers, or both refuse the chain),
//   - once validate() accepted the configuration, no ring access ever fails, and
//   - the used ring and avail_event hold what the device published.
//
// Input: u16 size, u16 max_size, u64 desc, u64 avail, u64 used (each address
// either raw or, when bit 63 is clear, taken mod guest RAM), u8 flags (bit0
// event_idx, bit1 indirect), then a guest RAM image, then ops.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "devices/virtio/queue.h"
#include "support/fuzz_common.h"
#include "support/fuzz_input.h"

using namespace vmm;
using namespace vmm::devices::virtio;
using memory::GuestAddress;
using memory::GuestMemory;

namespace {

// Two adjacent regions (a buffer may span them) and one after a hole.
constexpr uint64_t kRegionSize = 0x10000;
const std::vector<memory::GuestRange> kLayout = {
    {GuestAddress(0), kRegionSize},
    {GuestAddress(kRegionSize), kRegionSize},
    {GuestAddress(4 * kRegionSize), kRegionSize}};
constexpr uint64_t kRamSpan = 5 * kRegionSize;

struct RawDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

// The chain rules of virtio 1.2 §2.7.5 as queue.h states them, written plainly:
// nullopt when the chain must be refused.
std::optional<std::vector<Descriptor>> reference_walk(const GuestMemory& mem, const Queue& q,
                                                      bool indirect_allowed, uint16_t head) {
    std::vector<Descriptor> out;
    bool seen_writable = false;
    auto add = [&](const RawDesc& d) {
        if (out.size() >= Queue::kMaxChainLength) return false;
        if (!mem.contains(GuestAddress(d.addr), d.len)) return false;
        bool w = (d.flags & kDescWrite) != 0;
        if (!w && seen_writable) return false;
        seen_writable = seen_writable || w;
        out.push_back({GuestAddress(d.addr), d.len, w});
        return true;
    };
    uint16_t size = q.size();
    if (head >= size) return std::nullopt;
    uint16_t index = head;
    for (uint32_t visited = 0;; ++visited) {
        if (visited >= size) return std::nullopt;  // more than size descriptors: a loop
        auto d = mem.read_obj<RawDesc>(GuestAddress(q.desc_table().raw + 16ull * index));
        if (!d) return std::nullopt;
        if (d->flags & kDescIndirect) {
            if (!indirect_allowed || (d->flags & kDescNext)) return std::nullopt;
            if (d->len == 0 || d->len % 16 != 0 || d->len / 16 > Queue::kMaxChainLength) {
                return std::nullopt;
            }
            uint32_t count = d->len / 16;
            std::vector<RawDesc> table(count);
            if (!mem.read(GuestAddress(d->addr), std::as_writable_bytes(std::span(table)))) {
                return std::nullopt;
            }
            uint32_t i = 0;
            for (uint32_t seen = 0;; ++seen) {
                if (seen >= count) return std::nullopt;
                const RawDesc& e = table[i];
                if (e.flags & kDescIndirect) return std::nullopt;
                if (!add(e)) return std::nullopt;
                if (!(e.flags & kDescNext)) return out;
                if (e.next >= count) return std::nullopt;
                i = e.next;
            }
        }
        if (!add(*d)) return std::nullopt;
        if (!(d->flags & kDescNext)) return out;
        if (d->next >= size) return std::nullopt;
        index = d->next;
    }
}

uint64_t address(uint64_t raw) { return (raw >> 63) ? raw : raw % kRamSpan; }

bool same(const std::vector<Descriptor>& a, std::span<const Descriptor> b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].addr != b[i].addr || a[i].len != b[i].len ||
            a[i].device_writable != b[i].device_writable) {
            return false;
        }
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static GuestMemory mem = vmm::fuzz::make_memory(kLayout);
    vmm::fuzz::FuzzInput in(data, size);

    uint16_t qsize = in.u16();
    uint16_t max_size = in.u16();
    Queue q(max_size);
    q.set_size(qsize);
    q.set_desc_table(GuestAddress(address(in.u64())));
    q.set_avail_ring(GuestAddress(address(in.u64())));
    q.set_used_ring(GuestAddress(address(in.u64())));
    uint8_t flags = in.u8();
    bool event_idx = flags & 1;
    bool indirect = flags & 2;
    q.set_event_idx(event_idx);
    q.set_indirect_allowed(indirect);

    // The guest's RAM: the input image, zeros after it.
    for (const auto& region : mem.regions()) {
        auto image = in.bytes(in.u16());
        (void)mem.fill(region.start(), region.size(), std::byte{0});
        (void)mem.write(region.start(), image);
    }

    bool valid = q.validate(mem).has_value();
    if (!valid) {
        // A transport refuses to activate such a queue; calls must still be safe.
        q.set_ready(true);
        if (q.size() != 0) {
            (void)q.pop(mem);
            (void)q.pending(mem);
            (void)q.add_used(mem, 0, 0);
            (void)q.needs_notification(mem);
        }
        return 0;
    }
    FUZZ_CHECK(q.size() != 0 && q.size() <= q.max_size());
    q.set_ready(true);

    for (unsigned step = 0; step < 64 && !in.empty(); ++step) {
        uint8_t op = in.u8();
        switch (op % 4) {
            case 0: {  // pop, and complete it with a guest-chosen length
                uint16_t before = q.next_avail();
                auto pending = q.pending(mem);
                std::optional<uint16_t> head;
                std::optional<std::vector<Descriptor>> expected;
                if (pending && *pending > 0) {
                    auto h = mem.read_obj<uint16_t>(
                        GuestAddress(q.avail_ring().raw + 4 + 2ull * (before % q.size())));
                    FUZZ_CHECK(h.has_value());
                    head = *h;
                    // Before pop(): its avail_event store may land in a descriptor
                    // when the guest made the rings overlap.
                    expected = reference_walk(mem, q, indirect, *head);
                }
                auto popped = q.pop(mem);
                if (!pending) {
                    FUZZ_CHECK(!popped.has_value());
                    break;
                }
                if (!head) {
                    FUZZ_CHECK(popped.has_value() && !popped->has_value());
                    FUZZ_CHECK(q.next_avail() == before);
                    break;
                }
                if (!popped) {
                    FUZZ_CHECK_MSG(!expected.has_value(), popped.error().message().c_str());
                    FUZZ_CHECK(q.next_avail() == before);
                    break;
                }
                FUZZ_CHECK(popped->has_value());
                const DescriptorChain& chain = **popped;
                FUZZ_CHECK_MSG(expected.has_value(), "pop accepted a chain the rules refuse");
                FUZZ_CHECK(chain.head() == *head);
                FUZZ_CHECK(same(*expected, chain.descriptors()));
                FUZZ_CHECK(q.next_avail() == static_cast<uint16_t>(before + 1));
                if (event_idx) {
                    auto ev = mem.read_obj<uint16_t>(
                        GuestAddress(q.used_ring().raw + 4 + 8ull * q.size()));
                    FUZZ_CHECK(ev.has_value() && *ev == q.next_avail());
                }
                uint32_t len = in.u32();
                FUZZ_CHECK(q.add_used(mem, chain.head(), len).has_value());
                auto idx = mem.read_obj<uint16_t>(GuestAddress(q.used_ring().raw + 2));
                FUZZ_CHECK(idx.has_value() && *idx == q.next_used());
                break;
            }
            case 1: {  // the ring words change under the device
                uint64_t at = address(in.u64());
                (void)mem.write_obj<uint16_t>(GuestAddress(at), in.u16());
                break;
            }
            case 2: {  // completion of any head
                uint16_t head = in.u16();
                auto r = q.add_used(mem, head, in.u32());
                FUZZ_CHECK(r.has_value() == (head < q.size()));
                break;
            }
            case 3: {  // interrupt decision; never a ring error once validated
                FUZZ_CHECK(q.needs_notification(mem).has_value());
                break;
            }
        }
    }
    return 0;
}
