// Shared fixtures for the balloon tests: a recording VirtioInterrupt and a harness
// that lays out one TestRing per queue in a 16 MiB test guest and activates the
// device with them.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>

#include "../devices/virtio/virtio_test_support.h"
#include "balloon/virtio_balloon.h"

namespace vmm::balloon::test {

namespace dvt = devices::virtio::test;

class RecordingInterrupt final : public devices::virtio::VirtioInterrupt {
public:
    void signal_used_queue(uint16_t queue_index) override { ++used[queue_index]; }
    void signal_config_change() override { ++config_changes; }
    void set_device_needs_reset() override { ++needs_reset; }

    std::map<uint16_t, int> used;
    int config_changes = 0;
    int needs_reset = 0;
};

inline constexpr uint64_t kGuestRam = 16 << 20;
inline constexpr uint16_t kRingSize = 16;
// Rings take base .. base + 0x70000 each; buffers live from 4 MiB, pages from 8 MiB.
inline constexpr uint64_t kRingBases[] = {0x10000, 0x90000, 0x110000, 0x190000};
inline constexpr uint64_t kBufferArea = 4 << 20;

struct Harness {
    explicit Harness(const BalloonOptions& options)
        : mem(dvt::make_test_memory(kGuestRam)), irq(std::make_shared<RecordingInterrupt>()) {
        auto created = VirtioBalloon::create(options, mem.total_size());
        REQUIRE(created.has_value());
        dev = *created;
    }

    // One ring per queue the features need (plus `extra` unused ones, as a transport
    // that offered more queues would pass), then DRIVER_OK.
    Result<void> activate(uint64_t acked, size_t extra = 0) {
        size_t n = queue_roles(acked).size() + extra;
        REQUIRE(n <= std::size(kRingBases));
        devices::virtio::ActivateContext ctx;
        ctx.memory = &mem;
        ctx.acked_features = acked;
        ctx.interrupt = irq;
        for (size_t i = 0; i < n; ++i) {
            rings.emplace_back(mem, kRingSize, kRingBases[i]);
            ctx.queues.push_back(rings.back().make_queue(kBalloonQueueSize));
        }
        return dev->activate(std::move(ctx));
    }

    // Writes `values` at a fresh buffer address and returns that address.
    template <typename T>
    uint64_t put(const std::vector<T>& values) {
        uint64_t addr = m_next_buffer;
        if (!values.empty()) dvt::write_guest(mem, addr, std::as_bytes(std::span(values)));
        m_next_buffer += (values.size() * sizeof(T) + 63) / 64 * 64 + 64;
        return addr;
    }

    // Posts one chain of read-only PFN buffers on queue `q` and notifies the device.
    uint16_t post_pfns(uint16_t q, const std::vector<uint32_t>& pfns) {
        uint64_t addr = put(pfns);
        uint16_t head = rings[q].add_chain(
            {{addr, static_cast<uint32_t>(pfns.size() * sizeof(uint32_t)), false}});
        rings[q].publish();
        dev->process_queue(q);
        return head;
    }

    void fill_page(uint64_t pfn, uint8_t value) {
        REQUIRE(mem.fill(memory::GuestAddress(pfn << 12), 4096, std::byte{value}).has_value());
    }
    // True when every byte of the page equals `value`.
    bool page_is(uint64_t pfn, uint8_t value) {
        auto bytes = dvt::read_guest(mem, pfn << 12, 4096);
        return std::all_of(bytes.begin(), bytes.end(),
                           [value](std::byte b) { return b == std::byte{value}; });
    }

    memory::GuestMemory mem;
    std::shared_ptr<RecordingInterrupt> irq;
    std::shared_ptr<VirtioBalloon> dev;
    std::deque<dvt::TestRing> rings;

private:
    uint64_t m_next_buffer = kBufferArea;
};

}  // namespace vmm::balloon::test
