// The HyperAlloc balloon (device ID 0x4841) behind the real virtio-mmio transport:
// zone records on the info queue, the guest's LLFree state in shared guest RAM
// (laid out by the real guest core, llfree.c, then open to corruption by the
// driver program's raw writes), install requests, notifications, targets and auto
// passes. Checks the host's statistics stay within guest RAM and, with a DMA
// mapper attached, that the IOMMU view stays consistent (every map/unmap 2 MiB
// aligned, never mapping a mapped frame or unmapping an unmapped one).
//
// Guest RAM: [0, 16 MiB) and [16, 20 MiB) adjacent, [24, 28 MiB) after a hole.
// Harness buffers at 0x40000..0x80000, LLFree arrays from 1 MiB (0x40000 per zone).
//
// Input: u8 options (bit0 auto mode, bit1 two vCPUs, bit2 shrink_pagecache,
// bit3 DMA mapper), then the driver program. Device ops:
//   0 zone     u8 type, u16 start_pfn, u16 pages, u8 placement, u8 allocs
//              (placement bit0: arrays at raw u32 trees, lower, counter gpas)
//   1 records  u8 n, n x 56 raw bytes: one info buffer
//   2 target   u64
//   3 auto     one auto pass
//   4 install  u8 cpu, u32 node, u32 zone_type, u64 frame, u8 shape
//   5 notify   u32 value
//   6 stats    checks
//   7 limits   u64 auto limit, u8 pause
//   8 timer    the period timer fired
#include <sys/epoll.h>

#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "balloon/hyperalloc/hyperalloc_device.h"
#include "balloon/llfree/llfree.h"
#include "support/fuzz_common.h"
#include "support/virtio_driver.h"

using namespace vmm;
using namespace vmm::balloon::hyperalloc;
using memory::GuestAddress;
using memory::GuestRange;
using vmm::fuzz::FuzzBuffer;
using vmm::fuzz::FuzzInput;

namespace {

constexpr uint64_t kMiB = 1ull << 20;
const std::vector<GuestRange> kLayout = {{GuestAddress(0), 16 * kMiB},
                                         {GuestAddress(16 * kMiB), 4 * kMiB},
                                         {GuestAddress(24 * kMiB), 4 * kMiB}};
constexpr uint64_t kPfnSpan = 28 * kMiB / 4096;
constexpr uint64_t kScratch = 0x40000;  // records and install requests
constexpr uint64_t kArrays = 1 * kMiB;
constexpr uint64_t kArraysStride = 0x40000;

class CheckingMapper final : public memory::DmaMapper {
public:
    Result<void> map(GuestAddress addr, uint64_t len) override { return record(true, addr.raw, len); }
    Result<void> unmap(GuestAddress addr, uint64_t len) override { return record(false, addr.raw, len); }

private:
    Result<void> record(bool map, uint64_t addr, uint64_t len) {
        FUZZ_CHECK(len > 0 && addr % kFrameBytes == 0 && len % kFrameBytes == 0);
        for (uint64_t f = addr / kFrameBytes; f < (addr + len) / kFrameBytes; ++f) {
            bool unmapped = m_unmapped.count(f) != 0;
            FUZZ_CHECK_MSG(map == unmapped, map ? "maps a mapped frame" : "unmaps an unmapped frame");
            if (map) m_unmapped.erase(f);
            else m_unmapped.insert(f);
        }
        return ok();
    }
    std::set<uint64_t> m_unmapped;  // 2 MiB frame numbers; all RAM is mapped at first
};

uint8_t* host_pointer(const memory::GuestMemory& mem, uint64_t gpa, uint64_t len) {
    if (!mem.slice(GuestAddress(gpa), len)) return nullptr;
    for (const memory::GuestRegion& r : mem.regions()) {
        if (r.range().contains(GuestAddress(gpa), len)) {
            return reinterpret_cast<uint8_t*>(r.host_address_for_kvm()) + (gpa - r.start().raw);
        }
    }
    return nullptr;
}

class Guest {
public:
    Guest(vmm::fuzz::VirtioFuzzDriver& driver, HyperAllocDevice& dev, uint64_t ram)
        : m_driver(driver), m_dev(dev), m_mem(driver.memory()), m_ram(ram) {}

    void op(uint8_t sub, FuzzInput& in) {
        switch (sub % 9) {
            case 0: zone(in); break;
            case 1: {
                size_t n = 1 + in.u8() % 8;
                auto bytes = in.bytes(n * sizeof(ha_zone_record));
                (void)m_mem.write(GuestAddress(kScratch), bytes);
                post(HA_QUEUE_INFO, {{kScratch, static_cast<uint32_t>(bytes.size()), false}}, false);
                break;
            }
            case 2: {
                uint64_t v = in.u64();
                uint64_t bytes = (v & 1) ? v : (v >> 1) % 16 * kFrameBytes;
                bool ok = m_dev.set_target(bytes).has_value();
                FUZZ_CHECK(!ok || m_dev.target_bytes() == bytes);
                break;
            }
            case 3: m_dev.run_auto_pass_for_test(); break;
            case 4: install(in); break;
            case 5: {
                uint32_t value = in.u32() % 2;  // 0 is HA_NOTIFY_PAGECACHE_DROPPED
                (void)m_mem.write_obj(GuestAddress(kScratch + 0x800), value);
                post(HA_QUEUE_NOTIFY, {{kScratch + 0x800, 4, false}}, false);
                break;
            }
            case 6: check_stats(); break;
            case 7: {
                (void)m_dev.set_auto_limit(in.u64() % 8 * kFrameBytes);
                m_dev.pause_auto(in.flag());
                break;
            }
            case 8:
                for (int fd : m_dev.backend_fds()) m_dev.process_backend(fd, EPOLLIN);
                break;
        }
    }

    void check_stats() {
        HyperAllocStats s = m_dev.stats();
        FUZZ_CHECK(s.guest_ram_bytes == m_ram);
        FUZZ_CHECK(s.target_bytes <= m_ram);
        FUZZ_CHECK(s.hard_reclaimed_bytes + s.soft_reclaimed_bytes <= m_ram);
        FUZZ_CHECK(s.hard_reclaimed_bytes % kFrameBytes == 0 && s.soft_reclaimed_bytes % kFrameBytes == 0);
        FUZZ_CHECK(!s.guest_free_bytes || *s.guest_free_bytes <= m_ram);
        FUZZ_CHECK(!s.page_cache_bytes || *s.page_cache_bytes <= m_ram);
        FUZZ_CHECK(s.zones.size() <= 3);
        FUZZ_CHECK(s.install_errors <= s.install_requests);
        (void)m_dev.counters();
    }

private:
    void post(uint16_t q, std::vector<FuzzBuffer> buffers, bool indirect) {
        m_driver.post_chain(q, buffers, indirect);
    }

    // A zone as the guest driver sets it up: a real LLFree instance in guest RAM
    // with `allocs` allocations taken, then its record on the info queue.
    void zone(FuzzInput& in) {
        ha_zone_record r{};
        r.zone_type = in.u8() % 3;
        r.start_pfn = static_cast<uint32_t>(in.u16() % kPfnSpan);
        r.pages = static_cast<uint32_t>(in.u16() % (kPfnSpan + 1));  // 0: an empty zone
        uint8_t placement = in.u8();
        unsigned allocs = in.u8() % 32;
        uint64_t arrays = kArrays + kArraysStride * (m_zones.size() % 4);
        r.trees_gpa = arrays;
        r.lower_gpa = arrays + 0x1000;
        r.free_pages_gpa = arrays + 0x30000;
        r.file_pages_gpa = (placement & 2) ? 0 : arrays + 0x30008;
        r.local_gpa = arrays + 0x31000;
        if (placement & 1) {
            r.trees_gpa = in.u32();
            r.lower_gpa = in.u32();
            r.free_pages_gpa = in.u32();
        }
        uint64_t base = llf_base_pfn(r.start_pfn);
        uint64_t frames = uint64_t{r.start_pfn} + r.pages - base;
        uint8_t* trees = host_pointer(m_mem, r.trees_gpa, llf_trees_bytes(frames));
        uint8_t* lower = host_pointer(m_mem, r.lower_gpa, llf_lower_bytes(frames));
        auto z = std::make_unique<Zone>();
        if (trees && lower && llf_init(&z->l, base, frames, trees, lower, z->local.data()) == LLF_OK &&
            llf_init_free(&z->l, r.start_pfn - base, frames - (r.start_pfn - base)) == LLF_OK) {
            for (unsigned i = 0; i < allocs; ++i) {
                llf_result res{};
                (void)llf_get(&z->l, i, (i % 4 == 0) ? 9 : 0, &res);
            }
            (void)m_mem.store<uint64_t>(GuestAddress(r.free_pages_gpa), llf_free_frames(&z->l),
                                        std::memory_order_release);
        }
        m_zones.push_back(std::move(z));
        uint64_t at = kScratch + 0x1000;
        (void)m_mem.write_obj(GuestAddress(at), r);
        post(HA_QUEUE_INFO, {{at, sizeof(r), false}}, false);
    }

    // As the guest driver: the request, then a device-writable status word.
    void install(FuzzInput& in) {
        uint16_t q = static_cast<uint16_t>(HA_QUEUE_INSTALL_FIRST + in.u8() % 3);
        ha_install_request req{in.u32() % 2, in.u32() % 4, in.u64()};
        uint8_t shape = in.u8();
        if (!(shape & 4)) req.frame %= kPfnSpan;
        uint64_t at = kScratch + 0x2000;
        (void)m_mem.write_obj(GuestAddress(at), req);
        uint32_t marker = 0xdeadbeef;
        (void)m_mem.write_obj(GuestAddress(at + 0x40), marker);
        std::vector<FuzzBuffer> chain = {{at, sizeof(req), false}};
        if (!(shape & 2)) chain.push_back({at + 0x40, 4, true});
        post(q, chain, shape & 1);
    }

    struct Zone {
        struct llfree l {};
        std::vector<llf_local> local = std::vector<llf_local>(LLF_MAX_CPUS);
    };

    vmm::fuzz::VirtioFuzzDriver& m_driver;
    HyperAllocDevice& m_dev;
    const memory::GuestMemory& m_mem;
    uint64_t m_ram;
    std::vector<std::unique_ptr<Zone>> m_zones;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzInput in(data, size);
    auto mem = vmm::fuzz::make_memory(kLayout);
    uint8_t bits = in.u8();
    HyperAllocOptions options;
    options.auto_mode = bits & 1;
    options.vcpus = (bits & 2) ? 2 : 1;
    options.shrink_pagecache = bits & 4;
    auto created = HyperAllocDevice::create(options, mem.total_size());
    FUZZ_CHECK_MSG(created.has_value(), "harness: HyperAlloc options refused");
    std::shared_ptr<HyperAllocDevice> device = *created;
    if (bits & 8) device->set_dma_mapper(std::make_shared<CheckingMapper>());

    vmm::fuzz::VirtioFuzzDriver driver(device, mem);
    Guest guest(driver, *device, mem.total_size());
    driver.run(in, [&](uint8_t sub, FuzzInput& ops) { guest.op(sub, ops); });
    guest.check_stats();
    return 0;
}
