// Install requests: the status codes, populating only what was reclaimed, malformed
// requests, requests without a status buffer, concurrent vCPUs and an install storm
// that must not grow host memory.
#include <malloc.h>

#include <atomic>
#include <random>
#include <thread>

#include "hyperalloc_test_support.h"

using namespace vmm::balloon::hyperalloc;
using namespace vmm::balloon::hyperalloc::test;

namespace {

struct Active {
    explicit Active(HyperAllocOptions options = {}) : h(options) {
        zone = &add_default_zone(h);
        REQUIRE(h.activate().has_value());
        h.post_zones();
        REQUIRE(h.counter("zones") == 1);
    }
    Harness h;
    GuestZone* zone = nullptr;
};

}  // namespace

TEST_CASE("install of a hard-reclaimed frame is refused", "[hyperalloc][install]") {
    Active a;
    REQUIRE(a.h.dev->set_target(2 * kMiB).has_value());
    uint64_t hard = 30;
    for (uint64_t c = 0; c < 30; ++c) {
        uint16_t e = a.h.child_entry(*a.zone, c);
        if (llf_child_huge(e) && llf_child_reclaimed(e)) hard = c;
    }
    REQUIRE(hard < 30);
    LogCapture log;
    CHECK(a.h.install(hard * 512) == HA_INSTALL_ERR_HARD);
    CHECK(log.contains("which the host holds (hard-reclaimed)"));
    CHECK(a.h.counter("install_errors") == 1);
    CHECK(a.h.counter("installs") == 0);
    CHECK(llf_child_reclaimed(a.h.child_entry(*a.zone, hard)));
    CHECK(a.h.counter("hard_frames") == 1);
}

TEST_CASE("install of a frame that was never reclaimed is OK and populates nothing",
          "[hyperalloc][install]") {
    Active a;
    uint64_t gpa = Harness::child_gpa(*a.zone, 5);
    REQUIRE(resident_pages(a.h.mem, gpa, kFrame) == 0);
    CHECK(a.h.install(5 * 512 + 3) == HA_INSTALL_OK);
    CHECK(resident_pages(a.h.mem, gpa, kFrame) == 0);
    HyperAllocStats s = a.h.dev->stats();
    CHECK(s.installs == 0);
    CHECK(s.install_requests == 1);
    CHECK(s.install_errors == 0);
}

TEST_CASE("install requests for unknown zones or frames are errors", "[hyperalloc][install]") {
    Active a;
    LogCapture log;
    CHECK(a.h.install(0, HA_ZONE_MOVABLE) == HA_INSTALL_ERR_ZONE);
    CHECK(a.h.install(0, HA_ZONE_NORMAL, 1) == HA_INSTALL_ERR_ZONE);
    CHECK(a.h.install(0, 99) == HA_INSTALL_ERR_ZONE);
    CHECK(a.h.install(a.zone->frames) == HA_INSTALL_ERR_RANGE);
    CHECK(a.h.install(UINT64_MAX) == HA_INSTALL_ERR_RANGE);
    CHECK(a.h.install(a.zone->frames - 1) == HA_INSTALL_OK);
    CHECK(log.contains("install request for unknown zone_type 2 of node 0"));
    CHECK(log.contains("install request for frame 0x3c00 of the NORMAL zone, which has 0x3c00 frames"));
    HyperAllocStats s = a.h.dev->stats();
    CHECK(s.install_requests == 6);
    CHECK(s.install_errors == 5);
}

TEST_CASE("a short install request is an error; the buffer is still completed",
          "[hyperalloc][install]") {
    Active a;
    LogCapture log;
    std::vector<std::byte> twelve(12, std::byte{0});
    CHECK(a.h.install_raw(twelve) == HA_INSTALL_ERR_RANGE);
    CHECK(log.contains("malformed install request: 12 readable bytes, 16 expected"));
    CHECK(a.h.counter("install_errors") == 1);
    CHECK(a.h.irq->needs_reset == 0);
    CHECK(a.h.install(0) == HA_INSTALL_OK);
}

TEST_CASE("an install request without a status buffer is completed with length 0",
          "[hyperalloc][install]") {
    Active a;
    REQUIRE(a.h.dev->set_target(60 * kMiB - kFrame).has_value());
    REQUIRE(a.h.dev->set_target(0).has_value());  // everything returned, reclaimed
    ha_install_request req{0, HA_ZONE_NORMAL, 7 * 512};
    uint64_t addr = a.h.put_bytes(std::as_bytes(std::span(&req, 1)));
    dvt::TestRing& ring = a.h.rings[HA_QUEUE_INSTALL_FIRST];
    ring.add_chain({{addr, 16, false}});
    ring.publish();
    a.h.dev->process_queue(HA_QUEUE_INSTALL_FIRST);
    REQUIRE(ring.used_idx() == 1);
    CHECK(ring.used_elem(0).len == 0);
    CHECK_FALSE(llf_child_reclaimed(a.h.child_entry(*a.zone, 7)));
    CHECK(a.h.counter("installs") == 1);
}

TEST_CASE("installs before the zones are known are zone errors", "[hyperalloc][install]") {
    Harness h;
    add_default_zone(h);
    REQUIRE(h.activate().has_value());
    CHECK(h.install(0) == HA_INSTALL_ERR_ZONE);
}

TEST_CASE("install queues use the configured notify path", "[hyperalloc][install]") {
    HyperAllocOptions o;
    o.vcpus = 3;
    o.install_path = vmm::devices::virtio::NotifyPath::worker_thread;
    auto dev = HyperAllocDevice::create(o, 64 * kMiB);
    REQUIRE(dev.has_value());
    using vmm::devices::virtio::NotifyPath;
    CHECK((*dev)->notify_path(HA_QUEUE_INFO) == NotifyPath::event_loop);
    CHECK((*dev)->notify_path(HA_QUEUE_NOTIFY) == NotifyPath::event_loop);
    for (uint16_t q = 2; q < 5; ++q) CHECK((*dev)->notify_path(q) == NotifyPath::worker_thread);
    CHECK((*dev)->queue_max_sizes() == std::vector<uint16_t>{8, 8, 1, 1, 1});
}

TEST_CASE("an install storm does not grow host memory", "[hyperalloc][install]") {
    Active a;
    // Half the frames reclaimed and returned (soft), four held (hard).
    REQUIRE(a.h.dev->set_target(30 * kMiB).has_value());
    REQUIRE(a.h.dev->set_target(8 * kMiB).has_value());
    std::mt19937_64 rng(42);
    auto storm = [&](int n) {
        for (int i = 0; i < n; ++i) {
            uint64_t frame = rng() % (a.zone->frames + 64);  // some out of range
            uint32_t type = (rng() % 8 == 0) ? HA_ZONE_DMA32 : HA_ZONE_NORMAL;
            uint32_t status = a.h.install(frame, type);
            REQUIRE(status <= HA_INSTALL_ERR_HARD);
        }
    };
    storm(500);  // warm-up: every lazy allocation happens here
    size_t before = mallinfo2().uordblks;
    storm(20000);
    size_t after = mallinfo2().uordblks;
    CHECK(after <= before + 16 * 1024);
    HyperAllocStats s = a.h.dev->stats();
    CHECK(s.install_requests == 20500);
    CHECK(s.installs == 11);  // every soft frame, once
    CHECK(a.h.counter("hard_frames") == 4);
}

TEST_CASE("installs from several vCPUs run concurrently with host operations",
          "[hyperalloc][install]") {
    HyperAllocOptions o;
    o.vcpus = 2;
    o.auto_mode = true;
    Active a(o);
    std::atomic<bool> stop{false};
    std::atomic<int> bad_status{0};
    // Each vCPU thread drives its own size-1 ring directly through guest memory (Catch
    // assertions are not thread-safe, so failures are counted and checked after).
    auto vcpu = [&](unsigned cpu) {
        std::mt19937_64 rng(cpu);
        const vmm::memory::GuestMemory& mem = a.h.mem;
        dvt::TestRing& ring = a.h.rings[HA_QUEUE_INSTALL_FIRST + cpu];
        uint64_t req_addr = 0x3c0000 + cpu * 0x1000;
        uint64_t table = ring.used_addr() + 0x10000;
        const dvt::RawDesc entries[2] = {{req_addr, 16, vmm::devices::virtio::kDescNext, 1},
                                         {req_addr + 64, 4, vmm::devices::virtio::kDescWrite, 0}};
        const dvt::RawDesc head{table, 32, vmm::devices::virtio::kDescIndirect, 0};
        bool ok = mem.write(GuestAddress(table), std::as_bytes(std::span(entries))).has_value() &&
                  mem.write_obj(GuestAddress(ring.desc_addr()), head).has_value() &&
                  mem.write_obj(GuestAddress(ring.avail_addr() + 4), uint16_t{0}).has_value();
        if (!ok) ++bad_status;
        for (uint16_t i = 1; i <= 3000; ++i) {
            ha_install_request req{0, HA_ZONE_NORMAL, rng() % a.zone->frames};
            if (!mem.write_obj(GuestAddress(req_addr), req) ||
                !mem.store<uint16_t>(GuestAddress(ring.avail_addr() + 2), i, std::memory_order_release)) {
                ++bad_status;
            }
            a.h.dev->process_queue(static_cast<uint16_t>(HA_QUEUE_INSTALL_FIRST + cpu));
            auto used = mem.load<uint16_t>(GuestAddress(ring.used_addr() + 2), std::memory_order_acquire);
            if (!used || *used != i) ++bad_status;
            auto status = mem.read_obj<uint32_t>(GuestAddress(req_addr + 64));
            if (!status || *status > HA_INSTALL_ERR_HARD) ++bad_status;
        }
    };
    std::thread host([&] {
        uint64_t t = 0;
        while (!stop) {
            (void)a.h.dev->set_target((t++ % 8) * 4 * kMiB);
            a.h.dev->run_auto_pass_for_test();
            (void)a.h.dev->stats();
        }
    });
    std::thread v0(vcpu, 0);
    std::thread v1(vcpu, 1);
    v0.join();
    v1.join();
    stop = true;
    host.join();
    CHECK(bad_status == 0);
    CHECK(a.h.dev->stats().install_requests == 6000);
    CHECK(a.h.irq->needs_reset == 0);
    // The host's counts still match its frame states and the guest's entries.
    REQUIRE(a.h.dev->set_target(0).has_value());
    CHECK(a.h.counter("hard_frames") == 0);
    CHECK(llf_check(&a.zone->l) == 0);
}
