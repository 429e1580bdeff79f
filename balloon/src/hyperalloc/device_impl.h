// The HyperAlloc device's private state, shared by its source files:
//   hyperalloc_device.cpp  creation, virtio plumbing (features, config, activation,
//                          reset, queue dispatch, timer), API entry points
//   queues.cpp             info, notify and install queues
//   host_ops.cpp           target (hard reclaim / return), auto pass, discards
//   stats.cpp              statistics and counters
// Locking, outermost first:
//   lifecycle (shared_mutex)  exclusive in activate/reset; shared by everything that
//                             uses the queues, the guest memory or the zones
//   queue_locks[i]            one queue's ring state (install queues run on vCPU
//                             threads, several at once)
//   zone_mutex                the zone lock: zones, frame states, target, counters;
//                             serializes every host operation and every install
// Interrupts are raised only after every lock is dropped (Pending).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "balloon/hyperalloc/hyperalloc_device.h"
#include "balloon/llfree/llfree_host.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "hyperalloc/zone_record.h"

namespace vmm::balloon::hyperalloc {

inline constexpr uint64_t kConfigSize = 4;  // le32 shrink_pagecache
inline constexpr uint64_t kChildPages = LLF_CHILD_FRAMES;
// Children soft-reclaimed per hold of the zone lock in an auto pass, as the artefact.
inline constexpr size_t kAutoBatch = 8;
// Largest info buffer read (records); more than kMaxZones so that a guest's extra
// records are rejected one by one with a reason.
inline constexpr size_t kMaxRecordsPerBuffer = 64;

// One accepted zone: its LLFree instance and the host's state per 2 MiB child.
struct Zone {
    Zone(const memory::GuestMemory& mem, const ValidatedZone& validated);
    uint64_t children() const { return states.size(); }

    ValidatedZone record;
    llfree::HostView view;
    std::vector<FrameState> states;  // all installed at first
    std::vector<bool> ram;           // child_is_ram, fixed at acceptance
};

// Interrupts to raise once the locks are dropped.
struct Pending {
    std::vector<uint16_t> used_queues;
    bool config_change = false;
    bool needs_reset = false;
};

// Why the target is (re)applied: decides the log line and the page-cache request.
enum class Trigger { set_target, zones_arrived, pagecache_dropped, timer };

struct DeviceCounters {
    uint64_t installs = 0;          // frames populated and installed
    uint64_t install_requests = 0;  // requests completed, errors included
    uint64_t install_errors = 0;
    uint64_t auto_reclaimed_frames = 0;
    uint64_t discard_calls = 0;
    uint64_t bad_records = 0;  // zone records (or whole malformed buffers) rejected
};

// Installs per completed 1-second window. Reading has no side effect: a window with
// no installs is recognised from the time alone.
class RateWindow {
public:
    void record(std::chrono::steady_clock::time_point now);
    double rate(std::chrono::steady_clock::time_point now) const;

private:
    std::chrono::steady_clock::time_point m_start{};
    uint64_t m_count = 0;
    double m_last = 0;
};

struct HyperAllocDevice::Impl {
    Impl(const HyperAllocOptions& opts, uint64_t ram_bytes, UniqueFd timer_fd);

    bool auto_mode() const { return options.auto_mode && (acked & kFeatureAutoMode) != 0; }
    bool shrink_pagecache() const {
        return options.shrink_pagecache && (acked & kFeatureShrinkPagecache) != 0;
    }
    size_t queue_count() const { return 2 + options.vcpus; }
    template <typename... Args>
    void warn_limited(fmt::format_string<Args...> f, Args&&... args) const {
        if (log_limit.allow()) log::warn(f, std::forward<Args>(args)...);
    }
    void arm_timer(bool on) const;
    static void fire(const std::shared_ptr<devices::virtio::VirtioInterrupt>& irq,
                     const Pending& pending);

    // --- queues.cpp: lifecycle shared and the queue's lock held ---
    void drain(uint16_t index, Pending& pending);
    void take_zone_records(const devices::virtio::DescriptorChain& chain, Pending& pending);
    void take_notify(const devices::virtio::DescriptorChain& chain, Pending& pending);
    // Handles one install request; returns the bytes written (the status, or 0).
    uint32_t complete_install(const devices::virtio::DescriptorChain& chain);
    uint32_t install_frame(const ha_install_request& request);  // HA_INSTALL_*
    void fail(const Error& error, Pending& pending);

    // --- host_ops.cpp: lifecycle shared and zone_mutex held (auto_pass takes it) ---
    void apply_target(Trigger trigger, Pending& pending);
    uint64_t shrink(uint64_t frames);  // hard-reclaims up to `frames`; returns the count
    uint64_t grow(uint64_t frames);    // returns up to `frames` hard frames
    void set_state(Zone& zone, uint64_t child, FrameState state);
    void discard_children(Zone& zone, std::vector<uint64_t> children);
    void adjust_free_pages(const Zone& zone, int64_t pages) const;
    void auto_pass();
    // Device reset: return hard frames, map what was unmapped, forget the zones.
    void forget_zones();

    // --- constant after creation ---
    const HyperAllocOptions options;
    const uint64_t guest_ram_bytes;
    const UniqueFd timer;
    const std::unique_ptr<std::mutex[]> queue_locks;

    // --- lifecycle ---
    mutable std::shared_mutex lifecycle;
    bool active = false;
    std::atomic<bool> broken{false};  // a ring protocol error: nothing until reset
    uint64_t acked = 0;
    const memory::GuestMemory* mem = nullptr;
    std::shared_ptr<devices::virtio::VirtioInterrupt> interrupt;
    std::vector<devices::virtio::Queue> queues;

    // --- zone lock ---
    mutable std::mutex zone_mutex;
    std::vector<Zone> zones;  // in acceptance order; only reset removes any
    std::shared_ptr<memory::DmaMapper> mapper;
    uint64_t target_frames = 0;
    uint64_t hard_frames = 0;
    uint64_t soft_frames = 0;
    bool pagecache_outstanding = false;  // asked the guest, no answer yet
    DeviceCounters counters;
    RateWindow install_rate;

    // Auto-pass rationing (set_auto_limit, pause_auto): read once per pass, so
    // atomics rather than the zone lock.
    std::atomic<uint64_t> auto_limit_bytes;
    std::atomic<bool> auto_paused{false};

    // Config space; read under the transport's lock, so not under the zone lock.
    std::atomic<uint32_t> config_shrink_pagecache{0};
    mutable log::RateLimiter log_limit;
};

}  // namespace vmm::balloon::hyperalloc
