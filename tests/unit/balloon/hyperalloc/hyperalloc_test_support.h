// Fixtures for the HyperAlloc device tests: a test guest whose RAM holds the device's
// rings and one real LLFree instance per zone (laid out and driven with the guest core,
// llfree.c, through the region's raw mapping: tests only), a driver side that posts
// zone records, notifications and install requests, a log capture and a recording
// DMA mapper.
//
// Default guest RAM: one 64 MiB region. Fixed guest addresses:
//   rings          0x10000 + i * 0x80000 (info, notify, install...)   below 2.1 MiB
//   buffers        0x280000 .. 0x300000 (bump allocated, reused per request)
//   LLFree arrays  from 0x300000 (per zone: trees, lower, counters, local)
//   zone memory    from 4 MiB (the default zone: [4 MiB, 64 MiB), 30 children)
#pragma once

#include <catch2/catch.hpp>

#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "../balloon_test_support.h"
#include "balloon/hyperalloc/hyperalloc_device.h"
#include "balloon/llfree/llfree.h"
#include "common/log.h"

namespace vmm::balloon::hyperalloc::test {

namespace dvt = devices::virtio::test;
using balloon::test::RecordingInterrupt;
using memory::GuestAddress;

inline constexpr uint64_t kMiB = 1ull << 20;
inline constexpr uint64_t kFrame = 2 * kMiB;
inline constexpr uint64_t kZoneStart = 4 * kMiB;
inline constexpr uint64_t kArrays = 0x300000;
inline constexpr uint64_t kArraysStride = 0x20000;  // per zone
inline constexpr uint64_t kBuffers = 0x280000;
inline constexpr uint64_t kAllFeatures = devices::virtio::kFeatureVersion1 |
                                         devices::virtio::kFeatureIndirectDesc |
                                         kFeatureShrinkPagecache | kFeatureAutoMode;

// Captures log output (level info) for the lifetime of the object.
class LogCapture {
public:
    LogCapture() : m_file(std::tmpfile()), m_level(log::level()) {
        REQUIRE(m_file != nullptr);
        log::set_sink(m_file);
        log::set_level(log::Level::info);
    }
    ~LogCapture() {
        log::set_sink(nullptr);
        log::set_level(m_level);
        std::fclose(m_file);
    }
    LogCapture(const LogCapture&) = delete;
    LogCapture& operator=(const LogCapture&) = delete;
    std::string text() const {
        std::fflush(m_file);
        std::rewind(m_file);
        std::string out;
        char buf[4096];
        size_t n = 0;
        while ((n = std::fread(buf, 1, sizeof(buf), m_file)) > 0) out.append(buf, n);
        std::fseek(m_file, 0, SEEK_END);
        return out;
    }
    bool contains(const std::string& needle) const { return text().find(needle) != std::string::npos; }

private:
    std::FILE* m_file;
    log::Level m_level;
};

// Remembers every call and which 2 MiB frames are DMA-mapped (all RAM at first).
class RecordingMapper final : public memory::DmaMapper {
public:
    struct Call {
        bool map;
        uint64_t addr;
        uint64_t len;
    };
    // Runs inside map/unmap, e.g. to observe the memory at that moment.
    std::function<void(const Call&)> on_call;

    Result<void> map(GuestAddress addr, uint64_t len) override { return record({true, addr.raw, len}); }
    Result<void> unmap(GuestAddress addr, uint64_t len) override { return record({false, addr.raw, len}); }

    std::vector<Call> calls;
    std::set<uint64_t> unmapped;  // 2 MiB frame numbers
    int errors = 0;               // a map of a mapped frame or an unmap of an unmapped one
    bool fail_next = false;

private:
    Result<void> record(const Call& c) {
        calls.push_back(c);
        if (on_call) on_call(c);
        if (fail_next) {
            fail_next = false;
            return Error::msg("injected DMA failure");
        }
        if (c.addr % kFrame != 0 || c.len % kFrame != 0 || c.len == 0) ++errors;
        for (uint64_t f = c.addr / kFrame; f < (c.addr + c.len) / kFrame; ++f) {
            bool was_unmapped = unmapped.count(f) != 0;
            if (c.map == !was_unmapped) ++errors;
            if (c.map) unmapped.erase(f);
            else unmapped.insert(f);
        }
        return ok();
    }
};

// One LLFree instance in guest memory, as the guest kernel would keep it.
struct GuestZone {
    ha_zone_record record{};
    struct llfree l {};
    std::vector<llf_local> local = std::vector<llf_local>(LLF_MAX_CPUS);
    uint64_t frames = 0;
    uint64_t children() const { return llf_children(frames); }
};

inline uint8_t* host_pointer(const memory::GuestMemory& mem, uint64_t gpa) {
    for (const memory::GuestRegion& r : mem.regions()) {
        if (gpa >= r.start().raw && gpa - r.start().raw < r.size()) {
            return reinterpret_cast<uint8_t*>(r.host_address_for_kvm()) + (gpa - r.start().raw);
        }
    }
    FAIL("gpa " << gpa << " is not guest RAM");
    return nullptr;
}

inline memory::GuestMemory make_memory(std::vector<memory::GuestRange> layout) {
    auto mem = memory::GuestMemory::create(layout);
    REQUIRE(mem.has_value());
    return std::move(mem).value();
}

struct Harness {
    explicit Harness(HyperAllocOptions options = {},
                     std::vector<memory::GuestRange> layout = {{GuestAddress(0), 64 * kMiB}})
        : mem(make_memory(std::move(layout))), irq(std::make_shared<RecordingInterrupt>()) {
        auto created = HyperAllocDevice::create(options, mem.total_size());
        REQUIRE(created.has_value());
        dev = *created;
    }

    // Rings for info, notify and every install queue, then DRIVER_OK.
    Result<void> activate(uint64_t acked = kAllFeatures) {
        devices::virtio::ActivateContext ctx;
        ctx.memory = &mem;
        ctx.acked_features = acked;
        ctx.interrupt = irq;
        rings.clear();
        std::vector<uint16_t> sizes = dev->queue_max_sizes();
        for (size_t i = 0; i < sizes.size(); ++i) {
            rings.emplace_back(mem, sizes[i], 0x10000 + 0x80000 * i);
            ctx.queues.push_back(rings.back().make_queue(sizes[i]));
        }
        return dev->activate(std::move(ctx));
    }

    // Lays out an LLFree instance for [start_pfn, start_pfn + pages) with every
    // frame free except `allocated` (relative to the base), and its record.
    GuestZone& add_zone(uint32_t zone_type, uint64_t start_pfn, uint64_t pages,
                        const std::vector<uint64_t>& allocated = {}) {
        auto z = std::make_unique<GuestZone>();
        uint64_t base = llf_base_pfn(start_pfn);
        z->frames = start_pfn + pages - base;
        uint64_t arrays = kArrays + kArraysStride * guest_zones.size();
        z->record.trees_gpa = arrays;
        z->record.lower_gpa = arrays + 0x1000;
        z->record.free_pages_gpa = arrays + 0x10000;
        z->record.file_pages_gpa = arrays + 0x10008;
        z->record.local_gpa = arrays + 0x11000;
        z->record.start_pfn = static_cast<uint32_t>(start_pfn);
        z->record.pages = static_cast<uint32_t>(pages);
        z->record.zone_type = zone_type;
        z->record.node = 0;
        REQUIRE(llf_lower_bytes(z->frames) <= 0xf000);
        REQUIRE(llf_init(&z->l, base, z->frames, host_pointer(mem, z->record.trees_gpa),
                         host_pointer(mem, z->record.lower_gpa), z->local.data()) == LLF_OK);
        // Frames before start_pfn belong to no zone: they stay allocated.
        uint64_t first = start_pfn - base;
        REQUIRE(llf_init_free(&z->l, first, z->frames - first) == LLF_OK);
        for (uint64_t f : allocated) mark_allocated(*z, f);
        set_free_counter(*z, static_cast<int64_t>(llf_free_frames(&z->l)));
        guest_zones.push_back(std::move(z));
        return *guest_zones.back();
    }

    // Marks frame f allocated as the guest's get would (bit, child and tree counters).
    void mark_allocated(GuestZone& z, uint64_t f) {
        auto* bits = reinterpret_cast<uint64_t*>(host_pointer(mem, z.record.lower_gpa + llf_bitfield_offset(f / 512)));
        uint64_t& word = bits[(f % 512) / 64];
        REQUIRE((word & (1ull << (f % 64))) == 0);
        word |= 1ull << (f % 64);
        poke_child(z, f / 512, static_cast<uint16_t>(child_entry(z, f / 512) - 1));
        poke_tree(z, f / 4096, static_cast<uint16_t>(tree_entry(z, f / 4096) - 1));
    }

    void set_free_counter(const GuestZone& z, int64_t pages) {
        REQUIRE(mem.store<uint64_t>(GuestAddress(z.record.free_pages_gpa), static_cast<uint64_t>(pages),
                                    std::memory_order_release));
    }
    int64_t free_counter(const GuestZone& z) const {
        auto v = mem.load<uint64_t>(GuestAddress(z.record.free_pages_gpa), std::memory_order_acquire);
        REQUIRE(v.has_value());
        return static_cast<int64_t>(*v);
    }
    void set_file_counter(const GuestZone& z, int64_t pages) {
        REQUIRE(mem.store<uint64_t>(GuestAddress(z.record.file_pages_gpa), static_cast<uint64_t>(pages),
                                    std::memory_order_release));
    }
    uint16_t child_entry(const GuestZone& z, uint64_t child) const {
        auto v = mem.load<uint16_t>(GuestAddress(z.record.lower_gpa + llf_child_entry_offset(z.frames, child)),
                                    std::memory_order_acquire);
        REQUIRE(v.has_value());
        return *v;
    }
    uint16_t tree_entry(const GuestZone& z, uint64_t tree) const {
        auto v = mem.load<uint16_t>(GuestAddress(z.record.trees_gpa + 2 * tree), std::memory_order_acquire);
        REQUIRE(v.has_value());
        return *v;
    }
    void poke_child(const GuestZone& z, uint64_t child, uint16_t value) {
        REQUIRE(mem.store<uint16_t>(GuestAddress(z.record.lower_gpa + llf_child_entry_offset(z.frames, child)),
                                    value, std::memory_order_release));
    }
    void poke_tree(const GuestZone& z, uint64_t tree, uint16_t value) {
        REQUIRE(mem.store<uint16_t>(GuestAddress(z.record.trees_gpa + 2 * tree), value,
                                    std::memory_order_release));
    }
    // Guest address of a child's memory.
    static uint64_t child_gpa(const GuestZone& z, uint64_t child) {
        return (llf_base_pfn(z.record.start_pfn) + child * 512) * 4096;
    }

    // --- driver side ---
    uint64_t put_bytes(std::span<const std::byte> bytes) {
        if (m_next_buffer + bytes.size() + 64 > kArrays) m_next_buffer = kBuffers;
        uint64_t addr = m_next_buffer;
        if (!bytes.empty()) dvt::write_guest(mem, addr, bytes);
        m_next_buffer += (bytes.size() + 63) / 64 * 64 + 64;
        return addr;
    }
    void post_info_bytes(std::span<const std::byte> bytes) {
        uint64_t addr = put_bytes(bytes);
        rings[HA_QUEUE_INFO].add_chain({{addr, static_cast<uint32_t>(bytes.size()), false}});
        rings[HA_QUEUE_INFO].publish();
        dev->process_queue(HA_QUEUE_INFO);
    }
    void post_records(const std::vector<ha_zone_record>& records) {
        post_info_bytes(std::as_bytes(std::span(records)));
    }
    void post_zones() {
        std::vector<ha_zone_record> records;
        for (const auto& z : guest_zones) records.push_back(z->record);
        post_records(records);
    }
    void notify(uint32_t value) {
        uint64_t addr = put_bytes(std::as_bytes(std::span(&value, 1)));
        rings[HA_QUEUE_NOTIFY].add_chain({{addr, 4, false}});
        rings[HA_QUEUE_NOTIFY].publish();
        dev->process_queue(HA_QUEUE_NOTIFY);
    }
    // Sends one install request on vCPU `cpu`'s queue as the guest driver does (a
    // size-1 ring: one indirect descriptor for request + device-writable status) and
    // returns the status the device wrote (REQUIREs that the buffer was used).
    uint32_t install(uint64_t frame, uint32_t zone_type = HA_ZONE_NORMAL, uint32_t node = 0,
                     unsigned cpu = 0) {
        ha_install_request req{node, zone_type, frame};
        return install_raw(std::as_bytes(std::span(&req, 1)), cpu);
    }
    uint32_t install_raw(std::span<const std::byte> request, unsigned cpu = 0) {
        uint64_t addr = put_bytes(request);
        uint32_t marker = 0xdeadbeef;
        uint64_t status = put_bytes(std::as_bytes(std::span(&marker, 1)));
        dvt::TestRing& ring = rings[HA_QUEUE_INSTALL_FIRST + cpu];
        uint16_t before = ring.used_idx();
        // The same indirect table every time (each request completes before the
        // next), so that any number of requests fits: right after the ring's used area.
        uint64_t table = ring.used_addr() + 0x10000;
        std::vector<dvt::RawDesc> entries = {
            {addr, static_cast<uint32_t>(request.size()), devices::virtio::kDescNext, 1},
            {status, 4, devices::virtio::kDescWrite, 0}};
        dvt::write_guest(mem, table, std::as_bytes(std::span(entries)));
        uint16_t head = ring.alloc_desc();
        ring.write_desc(head, {table, 32, devices::virtio::kDescIndirect, 0});
        ring.push_avail(head);
        ring.publish();
        dev->process_queue(static_cast<uint16_t>(HA_QUEUE_INSTALL_FIRST + cpu));
        REQUIRE(ring.used_idx() == static_cast<uint16_t>(before + 1));
        CHECK(ring.used_elem(before).len == 4);
        auto v = mem.read_obj<uint32_t>(GuestAddress(status));
        REQUIRE(v.has_value());
        return *v;
    }
    uint32_t config_shrink_pagecache() const {
        uint32_t v = 0;
        dev->read_config(0, std::as_writable_bytes(std::span(&v, 1)));
        return v;
    }
    uint64_t counter(const std::string& name) const { return dev->counters().at(name); }

    memory::GuestMemory mem;
    std::shared_ptr<RecordingInterrupt> irq;
    std::shared_ptr<HyperAllocDevice> dev;
    std::deque<dvt::TestRing> rings;
    std::vector<std::unique_ptr<GuestZone>> guest_zones;

private:
    uint64_t m_next_buffer = kBuffers;
};

// The default zone: NORMAL, [4 MiB, 64 MiB) = 30 children from base pfn 1024.
inline GuestZone& add_default_zone(Harness& h, const std::vector<uint64_t>& allocated = {}) {
    return h.add_zone(HA_ZONE_NORMAL, kZoneStart / 4096, 60 * kMiB / 4096, allocated);
}

// Whether every byte of [gpa, gpa+len) equals value.
inline bool memory_is(const memory::GuestMemory& mem, uint64_t gpa, uint64_t len, uint8_t value) {
    auto bytes = dvt::read_guest(mem, gpa, len);
    return std::all_of(bytes.begin(), bytes.end(), [value](std::byte b) { return b == std::byte{value}; });
}

// Resident 4 KiB pages of [gpa, gpa+len) on the host (mincore).
inline uint64_t resident_pages(const memory::GuestMemory& mem, uint64_t gpa, uint64_t len) {
    std::vector<unsigned char> vec(len / 4096);
    REQUIRE(::mincore(host_pointer(mem, gpa), len, vec.data()) == 0);
    return static_cast<uint64_t>(std::count_if(vec.begin(), vec.end(), [](unsigned char v) { return v & 1; }));
}

}  // namespace vmm::balloon::hyperalloc::test
