// The two balloons as the automatic balloon controller sees them: what the guest
// reported (in the policy's terms and on its clock) and where the decisions go.
#include <algorithm>

#include "balloon/auto/counter_rate.h"
#include "balloon/hyperalloc/hyperalloc_device.h"
#include "balloon/virtio_balloon.h"
#include "vmm/auto_balloon.h"

namespace vmm {

namespace ab = balloon::auto_balloon;
using std::chrono::milliseconds;

namespace {

constexpr uint64_t kPage = 4096;

// The virtio-balloon: targets in 4 KiB pages; the guest's statistics queue.
class VirtioBalloonPort final : public AutoBalloonPort {
public:
    explicit VirtioBalloonPort(std::shared_ptr<balloon::VirtioBalloon> device) : m_device(std::move(device)) {}

    Reading read(milliseconds now) override {
        Reading r;
        r.target_bytes = uint64_t{m_device->target_pages()} * kPage;
        r.actual_bytes = uint64_t{m_device->actual_pages()} * kPage;
        std::optional<balloon::BalloonStats> stats = m_device->stats();
        if (!stats) return r;
        ab::GuestStats g;
        g.available_bytes = stats->available_memory;
        g.total_bytes = stats->total_memory;
        g.major_faults = stats->major_faults;
        g.alloc_stalls = stats->alloc_stall;
        g.sampled_at = sampled_at(stats->updated_at, now);
        r.guest = g;
        return r;
    }

    Result<void> set_target(uint64_t bytes) override { return m_device->set_target(bytes); }

private:
    // The device stamps a report with the wall clock; the policy wants its own clock.
    // The same report keeps the time it was first given, so that the policy sees a
    // repeat (and repeats the rate) rather than a zero rate over a few microseconds.
    milliseconds sampled_at(std::chrono::system_clock::time_point updated_at, milliseconds now) {
        if (m_last_updated && *m_last_updated == updated_at) return m_last_sampled;
        auto age = std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now() - updated_at);
        // A report from the future (the wall clock stepped back) counts as new.
        age = std::clamp(age, milliseconds(0), now);
        m_last_updated = updated_at;
        m_last_sampled = now - age;
        return m_last_sampled;
    }

    std::shared_ptr<balloon::VirtioBalloon> m_device;
    std::optional<std::chrono::system_clock::time_point> m_last_updated;
    milliseconds m_last_sampled{0};
};

// HyperAlloc: targets in 2 MiB frames; the guest's shared free-page and page-cache
// counters (read live) stand in for the statistics, and re-installs of
// soft-reclaimed frames show what soft reclaim costs the guest.
class HyperAllocPort final : public AutoBalloonPort {
public:
    explicit HyperAllocPort(std::shared_ptr<balloon::hyperalloc::HyperAllocDevice> device)
        : m_device(std::move(device)) {}

    Reading read(milliseconds now) override {
        balloon::hyperalloc::HyperAllocStats s = m_device->stats();
        Reading r;
        r.target_bytes = s.target_bytes;
        r.actual_bytes = s.hard_reclaimed_bytes;
        // Until the guest reported its zones there is nothing to read: no signal,
        // so the policy does not inflate blind.
        if (!s.guest_free_bytes) return r;
        ab::GuestStats g;
        // Free frames plus the page cache it could drop: its available memory.
        g.available_bytes = std::min(*s.guest_free_bytes + s.page_cache_bytes.value_or(0), s.guest_ram_bytes);
        g.sampled_at = now;
        r.guest = g;
        // The rate over the time since the last tick, or over the device's last
        // second, whichever is higher: a burst must not be averaged away by a long
        // tick, nor missed by a short one.
        double rate = m_installs.update(s.installs, now).value_or(0);
        r.installs_per_s = std::max(rate, s.installs_per_s);
        return r;
    }

    Result<void> set_target(uint64_t bytes) override { return m_device->set_target(bytes); }

    // The device's auto limit is whole 2 MiB frames with 0 meaning "no limit": a
    // positive limit is rounded up (never down to 0, which would lift it), and 0
    // pauses the passes instead.
    Result<void> set_soft_reclaim(uint64_t bytes) override {
        using balloon::hyperalloc::kFrameBytes;
        if (bytes == 0) {
            m_device->pause_auto(true);
            return ok();
        }
        uint64_t limit = 0;  // no limit
        if (bytes != ab::kSoftReclaimUnlimited) {
            limit = bytes > UINT64_MAX - kFrameBytes ? 0 : (bytes + kFrameBytes - 1) / kFrameBytes * kFrameBytes;
        }
        VMM_TRY(m_device->set_auto_limit(limit));
        m_device->pause_auto(false);
        return ok();
    }

private:
    std::shared_ptr<balloon::hyperalloc::HyperAllocDevice> m_device;
    ab::CounterRate m_installs;
};

}  // namespace

std::unique_ptr<AutoBalloonPort> make_auto_balloon_port(std::shared_ptr<balloon::VirtioBalloon> device) {
    return std::make_unique<VirtioBalloonPort>(std::move(device));
}

std::unique_ptr<AutoBalloonPort> make_auto_balloon_port(
    std::shared_ptr<balloon::hyperalloc::HyperAllocDevice> device) {
    return std::make_unique<HyperAllocPort>(std::move(device));
}

}  // namespace vmm
