// The device's virtio face and its statistics: features, config space, the period
// timer fd, counters, the guest's shared counters and the install rate.
#include <sys/timerfd.h>

#include <thread>

#include "hyperalloc_test_support.h"

using namespace vmm::balloon::hyperalloc;
using namespace vmm::balloon::hyperalloc::test;

TEST_CASE("features, queues and config space", "[hyperalloc][device]") {
    HyperAllocOptions o;
    o.vcpus = 2;
    o.auto_mode = true;
    o.shrink_pagecache = false;
    auto dev = HyperAllocDevice::create(o, 64 * kMiB);
    REQUIRE(dev.has_value());
    CHECK((*dev)->device_type() == 0x4841);
    uint64_t f = (*dev)->device_features();
    CHECK((f & vmm::devices::virtio::kFeatureVersion1) != 0);
    CHECK((f & vmm::devices::virtio::kFeatureIndirectDesc) != 0);
    CHECK((f & kFeatureAutoMode) != 0);
    CHECK((f & kFeatureShrinkPagecache) == 0);
    CHECK((*dev)->queue_max_sizes() == std::vector<uint16_t>{8, 8, 1, 1});

    o.auto_mode = false;
    o.shrink_pagecache = true;
    auto other = HyperAllocDevice::create(o, 64 * kMiB);
    REQUIRE(other.has_value());
    CHECK(((*other)->device_features() & kFeatureAutoMode) == 0);
    CHECK(((*other)->device_features() & kFeatureShrinkPagecache) != 0);

    // Config: le32 shrink_pagecache; the guest may write back a remainder.
    uint32_t v = 1234;
    (*dev)->write_config(0, std::as_bytes(std::span(&v, 1)));
    std::array<std::byte, 8> out{};
    out.fill(std::byte{0xff});
    (*dev)->read_config(0, out);
    uint32_t read = 0;
    std::memcpy(&read, out.data(), 4);
    CHECK(read == 1234);
    CHECK(out[4] == std::byte{0});  // past the end reads zero
    std::array<std::byte, 2> high{};
    (*dev)->read_config(2, high);
    CHECK(high[0] == std::byte{0});  // 1234 = 0x04d2
    (*dev)->read_config(1, std::span(high).first(1));
    CHECK(high[0] == std::byte{0x04});
    uint16_t narrow = 7;
    LogCapture log;
    (*dev)->write_config(0, std::as_bytes(std::span(&narrow, 1)));
    (*dev)->write_config(4, std::as_bytes(std::span(&v, 1)));
    CHECK(log.contains("ignoring guest config write of 2 bytes at offset 0x0"));
    (*dev)->read_config(0, std::span(out).first(4));
    std::memcpy(&read, out.data(), 4);
    CHECK(read == 1234);
}

TEST_CASE("the period timer is armed only while active", "[hyperalloc][device]") {
    HyperAllocOptions o;
    o.auto_period = std::chrono::milliseconds(250);
    Harness h(o);
    add_default_zone(h);
    std::vector<int> fds = h.dev->backend_fds();
    REQUIRE(fds.size() == 1);
    itimerspec spec{};
    REQUIRE(::timerfd_gettime(fds[0], &spec) == 0);
    CHECK(spec.it_interval.tv_nsec == 0);
    CHECK(spec.it_interval.tv_sec == 0);
    REQUIRE(h.activate().has_value());
    REQUIRE(::timerfd_gettime(fds[0], &spec) == 0);
    CHECK(spec.it_interval.tv_nsec == 250000000);
    h.dev->reset();
    REQUIRE(::timerfd_gettime(fds[0], &spec) == 0);
    CHECK(spec.it_value.tv_sec == 0);
    CHECK(spec.it_value.tv_nsec == 0);
    h.dev->process_backend(fds[0], 1);  // nothing to read: a no-op
    h.dev->process_backend(-1, 1);      // not ours: ignored
}

TEST_CASE("statistics read the guest's shared counters, clamped", "[hyperalloc][device]") {
    Harness h;
    GuestZone& dma = h.add_zone(HA_ZONE_DMA32, kZoneStart / 4096, 28 * kMiB / 4096);
    GuestZone& normal = h.add_zone(HA_ZONE_NORMAL, 32 * kMiB / 4096, 32 * kMiB / 4096);
    // Both zones point at the node's one page-cache counter.
    normal.record.file_pages_gpa = dma.record.file_pages_gpa;
    h.set_file_counter(dma, 1000);
    REQUIRE(h.activate().has_value());
    HyperAllocStats before = h.dev->stats();
    CHECK_FALSE(before.guest_free_bytes.has_value());
    CHECK_FALSE(before.page_cache_bytes.has_value());
    CHECK(before.guest_ram_bytes == 64 * kMiB);

    h.post_zones();
    HyperAllocStats s = h.dev->stats();
    CHECK(s.guest_free_bytes == (28 + 32) * kMiB);
    CHECK(s.page_cache_bytes == 1000 * 4096);
    CHECK(s.zones.size() == 2);
    h.set_file_counter(dma, -5);
    CHECK(h.dev->stats().page_cache_bytes == 0);
    h.set_free_counter(normal, 1ll << 40);
    CHECK(h.dev->stats().guest_free_bytes == 64 * kMiB);

    std::map<std::string, uint64_t> c = h.dev->counters();
    for (const char* key : {"zones", "hard_frames", "soft_frames", "installs", "install_errors",
                            "bad_records", "discard_calls", "auto_reclaimed_frames", "target_frames"}) {
        CHECK(c.count(key) == 1);
    }
    CHECK(c.size() == 9);
    CHECK(c.at("zones") == 2);
}

TEST_CASE("installs_per_s covers the last completed one-second window", "[hyperalloc][device]") {
    Harness h;
    GuestZone& z = add_default_zone(h);
    REQUIRE(h.activate().has_value());
    h.post_zones();
    REQUIRE(h.dev->set_target(20 * kMiB).has_value());
    REQUIRE(h.dev->set_target(0).has_value());  // 10 soft frames
    CHECK(h.dev->stats().installs_per_s == 0);
    int installed = 0;
    for (uint64_t c = 0; c < 30 && installed < 6; ++c) {
        if (!llf_child_reclaimed(h.child_entry(z, c))) continue;
        REQUIRE(h.install(c * 512) == HA_INSTALL_OK);
        ++installed;
    }
    REQUIRE(installed == 6);
    // The window is still open: nothing completed yet.
    CHECK(h.dev->stats().installs_per_s == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    CHECK(h.dev->stats().installs_per_s == 6);
    CHECK(h.dev->stats().installs_per_s == 6);  // reading changes nothing
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    CHECK(h.dev->stats().installs_per_s == 0);  // the next window had none
}
