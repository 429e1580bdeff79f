// The HyperAlloc balloon (docs/hyperalloc.md): the guest's LLFree allocator state is
// shared with the host, which reclaims and returns memory in 2 MiB frames by itself.
//  - info queue: the guest reports its zones (ha_zone_record); each record is
//    validated on its own (arrays inside one RAM region, 64-byte aligned, sizes that
//    match the zone, no overlap with any other array or zone) and bad ones are logged
//    and ignored while the good ones are used.
//  - install queues (one per vCPU, size 1): the guest asks for a reclaimed frame
//    before it uses it; the host re-checks the bit, DMA-maps and populates the 2 MiB
//    (MADV_POPULATE_WRITE), clears the bit, then completes the request.
//  - manual target: hard reclaim (guest loses the frames, its free-page counter drops
//    by 512 each) and return (frames come back unbacked); discards are merged into
//    ranges of adjacent frames.
//  - auto mode: every period, soft-reclaim every completely free frame (optionally at
//    most `auto_limit_bytes` per period) and discard it.
// Every value from the guest is untrusted; a hostile guest gets errors and
// rate-limited log lines, never a crash, a hang or host memory growth.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "balloon/hyperalloc/hyperalloc_abi.h"
#include "common/result.h"
#include "devices/virtio/virtio_device.h"
#include "memory/dma_mapper.h"

namespace vmm::balloon::hyperalloc {

inline constexpr uint64_t kFrameBytes = 2ull << 20;  // one LLFree child
inline constexpr uint64_t kFeatureShrinkPagecache = 1ull << HA_F_SHRINK_PAGECACHE_BIT;
inline constexpr uint64_t kFeatureAutoMode = 1ull << HA_F_AUTO_MODE_BIT;

struct HyperAllocOptions {
    uint64_t target_bytes = 0;  // initial balloon size (hard-reclaimed), multiple of 2 MiB
    bool auto_mode = false;     // soft-reclaim free frames every auto_period
    std::chrono::milliseconds auto_period{5000};
    uint64_t auto_limit_bytes = 0;  // most soft-reclaimed per period; 0 = no limit
    bool shrink_pagecache = true;   // offer SHRINK_PAGECACHE
    unsigned vcpus = 1;             // one install queue each
    // Which thread handles install requests (docs/hyperalloc.md has the measurement
    // behind the default): the notifying vCPU itself, or a worker thread.
    devices::virtio::NotifyPath install_path = devices::virtio::NotifyPath::vcpu_thread;
};

// Host bookkeeping per 2 MiB frame (the artefact's 2-bit state).
enum class FrameState : uint8_t { installed, soft, hard };

struct ZoneInfo {
    uint32_t node = 0;
    uint32_t zone_type = 0;
    uint64_t start_pfn = 0;
    uint64_t pages = 0;
    uint64_t base_pfn = 0;
    uint64_t frames = 0;  // LLFree frames from base_pfn
};

struct HyperAllocStats {
    uint64_t guest_ram_bytes = 0;
    uint64_t target_bytes = 0;          // balloon size asked for
    uint64_t hard_reclaimed_bytes = 0;  // the balloon's actual size
    uint64_t soft_reclaimed_bytes = 0;  // free, unbacked until installed
    // From the guest's shared counters (untrusted: clamped to guest RAM); nullopt
    // before the zones are known or when the guest reports no such counter.
    std::optional<uint64_t> guest_free_bytes;
    std::optional<uint64_t> page_cache_bytes;
    uint64_t installs = 0;          // frames installed (populated) for the guest
    uint64_t install_requests = 0;  // requests completed, errors included
    uint64_t install_errors = 0;
    double installs_per_s = 0;      // over the last completed rate window (1 s)
    uint64_t auto_reclaimed_bytes = 0;  // total soft-reclaimed by auto mode
    uint64_t auto_limit_bytes = 0;      // the current per-pass limit; 0 = no limit
    bool auto_paused = false;           // pause_auto(true): passes skipped
    uint64_t discard_calls = 0;
    uint64_t bad_records = 0;
    bool pagecache_shrink_pending = false;
    std::vector<ZoneInfo> zones;
};

class HyperAllocDevice final : public devices::virtio::VirtioDevice {
public:
    // guest_ram_bytes bounds the target; options are validated (target multiple of
    // 2 MiB and < RAM, period >= 10 ms, vcpus 1..LLF_MAX_CPUS).
    [[nodiscard]] static Result<std::shared_ptr<HyperAllocDevice>> create(const HyperAllocOptions& options,
                                                                          uint64_t guest_ram_bytes);
    ~HyperAllocDevice() override;

    // --- VirtioDevice ---
    uint32_t device_type() const override { return HA_VIRTIO_DEVICE_ID; }
    std::vector<uint16_t> queue_max_sizes() const override;  // info, notify, vcpus x install
    uint64_t device_features() const override;
    void read_config(uint64_t offset, std::span<std::byte> data) const override;
    void write_config(uint64_t offset, std::span<const std::byte> data) override;
    [[nodiscard]] Result<void> activate(devices::virtio::ActivateContext context) override;
    void reset() override;  // returns every frame, forgets the zones, maps all RAM for DMA
    void process_queue(uint16_t index) override;
    devices::virtio::NotifyPath notify_path(uint16_t index) const override;
    std::vector<int> backend_fds() const override;  // the period timerfd
    void process_backend(int fd, uint32_t events) override;
    std::map<std::string, uint64_t> counters() const override;

    // --- VMM thread / API ---
    // New balloon size (multiple of 2 MiB, < guest RAM). Applied at once when the
    // zones are known (hard reclaim or return), else when they arrive; a shortfall is
    // retried every period and, with SHRINK_PAGECACHE, after the guest dropped cache.
    [[nodiscard]] Result<void> set_target(uint64_t bytes);
    uint64_t target_bytes() const;
    HyperAllocStats stats() const;
    const HyperAllocOptions& options() const { return m_options; }
    // VFIO (issue 7): set before activation. Until the zones are known all RAM stays
    // mapped; reclaimed ranges are unmapped before their discard, installed frames
    // mapped before the install completes.
    void set_dma_mapper(std::shared_ptr<memory::DmaMapper> mapper);
    // At any time (a VFIO device hot-added to a running VM): maps every part of
    // `mem` the balloon has not reclaimed, then follows reclaims and installs like
    // set_dma_mapper. Atomic with respect to reclaim and install (the zone lock is
    // held throughout). Fails if a mapper is attached; on failure nothing is attached
    // and the caller drops the container (which unmaps whatever was mapped).
    [[nodiscard]] Result<void> attach_dma_mapper(std::shared_ptr<memory::DmaMapper> mapper,
                                                 const memory::GuestMemory& mem);
    // The last VFIO device is gone: stop updating the mapper.
    void detach_dma_mapper();
    // The automatic balloon controller (vmm/auto_balloon.h) rations soft reclaim:
    // the most one auto pass may take (multiple of 2 MiB; 0 = no limit), and pausing
    // the passes altogether while the guest is short of memory. Both take effect at
    // the next pass; options().auto_limit_bytes keeps the configured start value.
    [[nodiscard]] Result<void> set_auto_limit(uint64_t bytes);
    void pause_auto(bool paused);
    // Tests: run one auto-mode pass now (same code as the timer).
    void run_auto_pass_for_test();

private:
    struct Impl;
    explicit HyperAllocDevice(std::unique_ptr<Impl> impl, const HyperAllocOptions& options);
    HyperAllocOptions m_options;
    std::unique_ptr<Impl> m_impl;
};

}  // namespace vmm::balloon::hyperalloc
