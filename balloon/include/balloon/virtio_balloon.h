// virtio-balloon (virtio 1.2 §5.5): the host sets a target (num_pages) and the guest
// driver gives that many 4 KiB pages back through the inflate queue; the host
// discards them at once (no VIRTIO_BALLOON_F_MUST_TELL_HOST, so deflate is only an
// acknowledgement). Optional: a statistics queue polled by a timerfd, deflate on
// OOM (a guest-side policy; the host only offers the bit) and free page reporting.
// No free page hinting. Everything the guest sends is untrusted: bad PFNs and
// malformed descriptors are skipped, counted and logged (rate-limited).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "balloon/balloon_stats.h"
#include "common/log.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "devices/virtio/virtio_device.h"

namespace vmm::balloon {

inline constexpr uint64_t kFeatureStatsVq = 1ull << 1;             // VIRTIO_BALLOON_F_STATS_VQ
inline constexpr uint64_t kFeatureDeflateOnOom = 1ull << 2;        // ..._F_DEFLATE_ON_OOM
inline constexpr uint64_t kFeatureFreePageReporting = 1ull << 5;   // ..._F_REPORTING

inline constexpr uint16_t kBalloonQueueSize = 256;
// Like cloud-hypervisor: one inflate/deflate descriptor carries at most 1 KiB of PFNs.
inline constexpr uint32_t kMaxPfnsPerDescriptor = 256;
// Config space: le32 num_pages at 0 (host-written), le32 actual at 4 (guest-written).
inline constexpr uint64_t kConfigSize = 8;
inline constexpr uint64_t kConfigActualOffset = 4;

struct BalloonOptions {
    uint64_t target_bytes = 0;             // initial target; 4 KiB-aligned, <= guest RAM
    bool deflate_on_oom = false;
    bool free_page_reporting = false;
    uint32_t stats_polling_interval_s = 0;  // 0: no statistics queue offered
};

enum class QueueRole { inflate, deflate, stats, reporting };

// Queue index -> role for a feature set: inflateq, deflateq, then statsq only with
// STATS_VQ and reporting_vq only with REPORTING (absent queues take no index).
std::vector<QueueRole> queue_roles(uint64_t features);

struct BalloonCounters {
    uint64_t pages_inflated = 0;         // distinct valid PFNs discarded
    uint64_t pages_deflated = 0;         // PFNs the guest took back
    uint64_t pages_reported = 0;         // 4 KiB pages discarded via free page reporting
    uint64_t inflate_discard_calls = 0;  // GuestMemory::discard calls made for inflate
    uint64_t bad_pfns = 0;               // PFNs outside guest RAM, skipped
    uint64_t pages_kept_pinned = 0;      // inflated or reported while pinned: not discarded
};

class VirtioBalloon final : public devices::virtio::VirtioDevice {
public:
    // guest_ram_bytes bounds every target (GuestMemory::total_size()).
    [[nodiscard]] static Result<std::shared_ptr<VirtioBalloon>> create(
        const BalloonOptions& options, uint64_t guest_ram_bytes);
    ~VirtioBalloon() override;

    // --- VirtioDevice ---
    uint32_t device_type() const override { return devices::virtio::kIdBalloon; }
    std::vector<uint16_t> queue_max_sizes() const override;
    uint64_t device_features() const override;
    void read_config(uint64_t offset, std::span<std::byte> data) const override;
    void write_config(uint64_t offset, std::span<const std::byte> data) override;
    [[nodiscard]] Result<void> activate(devices::virtio::ActivateContext context) override;
    void reset() override;
    void process_queue(uint16_t index) override;
    // pages_inflated, pages_deflated, pages_reported, inflate_discard_calls, bad_pfns.
    std::map<std::string, uint64_t> counters() const override;

    // --- event loop: the statistics timerfd (empty when stats are off) ---
    std::vector<int> backend_fds() const override;
    void process_backend(int fd, uint32_t events) override;

    // --- API ---
    // New target; raises a config-change interrupt when the driver is active.
    [[nodiscard]] Result<void> set_target(uint64_t bytes);
    uint32_t target_pages() const;
    uint32_t actual_pages() const;  // as last written by the guest
    // The latest statistics the guest sent; nullopt before the first buffer.
    std::optional<BalloonStats> stats() const;
    BalloonCounters counter_values() const;
    bool stats_negotiated() const;
    // Changes the polling interval (stats must have been enabled at creation; 0 is
    // refused because the feature cannot be withdrawn from a running driver).
    [[nodiscard]] Result<void> set_stats_interval(uint32_t seconds);
    // A VFIO device pins all guest RAM for DMA (--balloon allow_vfio=on): discarding
    // a page would leave the IOMMU pointing at the old one while the guest's next
    // touch faults in a new one. While pinned the balloon only accounts pages
    // (counter pages_kept_pinned); the memory is not given back to the host.
    void set_pinned(bool pinned) { m_pinned.store(pinned); }
    bool pinned() const { return m_pinned.load(); }
    // Tests: a sub-second polling period, applied at the next activation.
    void set_stats_period_for_test(std::chrono::milliseconds period);

private:
    struct Pending {  // interrupts to raise after the lock is dropped
        std::vector<uint16_t> used_queues;
        bool needs_reset = false;
    };

    VirtioBalloon(const BalloonOptions& options, uint64_t guest_ram_bytes, UniqueFd timer);
    [[nodiscard]] Result<uint32_t> pages_for(uint64_t bytes) const;
    void fire(const std::shared_ptr<devices::virtio::VirtioInterrupt>& irq,
              const Pending& pending) const;
    void arm_timer(bool on);

    // Queue handlers (balloon_queues.cpp); called with m_mutex held.
    void drain_queue(uint16_t index, Pending& pending);
    std::vector<uint32_t> read_pfns(const devices::virtio::DescriptorChain& chain,
                                    const char* queue_name);
    void inflate(const devices::virtio::DescriptorChain& chain);
    void report_free_pages(const devices::virtio::DescriptorChain& chain);
    void take_stats(const devices::virtio::DescriptorChain& chain);
    void return_stats_buffer(Pending& pending);
    // Marks the device broken after a protocol error from the queue code.
    void fail(const Error& error, Pending& pending);
    template <typename... Args>
    void warn_limited(fmt::format_string<Args...> f, Args&&... args) const {
        if (m_log_limit.allow()) log::warn(f, std::forward<Args>(args)...);
    }

    const BalloonOptions m_options;
    const uint64_t m_guest_ram_bytes;
    UniqueFd m_timer;  // timerfd; invalid when stats are off

    std::atomic<bool> m_pinned{false};
    mutable std::mutex m_mutex;
    uint32_t m_target_pages = 0;
    uint32_t m_actual_pages = 0;
    std::chrono::milliseconds m_stats_period;
    bool m_active = false;
    bool m_broken = false;  // a protocol error: nothing more until reset
    uint64_t m_acked = 0;
    const memory::GuestMemory* m_mem = nullptr;
    std::shared_ptr<devices::virtio::VirtioInterrupt> m_interrupt;
    std::vector<devices::virtio::Queue> m_queues;
    std::vector<QueueRole> m_roles;
    std::optional<uint16_t> m_held_stats;  // head of the stats buffer we keep
    std::optional<BalloonStats> m_stats;
    BalloonCounters m_counters;
    mutable log::RateLimiter m_log_limit;
};

}  // namespace vmm::balloon
