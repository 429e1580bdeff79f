// Statistics and API counters of the HyperAlloc device. Nothing here changes state:
// the install rate is derived from the window's timestamp, and the guest's shared
// counters are only loaded (and clamped, since the guest may write anything there).
#include <set>

#include "hyperalloc/device_impl.h"

namespace vmm::balloon::hyperalloc {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWindow = std::chrono::seconds(1);

// The guest's s64 page counter in bytes, clamped to [0, ram]; nullopt if unreadable.
std::optional<uint64_t> counter_bytes(const memory::GuestMemory& mem, memory::GuestAddress addr,
                                      uint64_t ram) {
    auto raw = mem.load<uint64_t>(addr, std::memory_order_relaxed);
    if (!raw) return std::nullopt;
    auto pages = static_cast<int64_t>(*raw);
    if (pages <= 0) return 0;
    if (static_cast<uint64_t>(pages) > ram / LLF_FRAME_SIZE) return ram;
    return static_cast<uint64_t>(pages) * LLF_FRAME_SIZE;
}

}  // namespace

void RateWindow::record(Clock::time_point now) {
    if (m_start == Clock::time_point{}) m_start = now;
    auto elapsed = now - m_start;
    if (elapsed >= kWindow) {
        // The window that just ended; if more than one ended, the last one was empty.
        m_last = elapsed < 2 * kWindow ? static_cast<double>(m_count) : 0.0;
        m_start += (elapsed / kWindow) * kWindow;
        m_count = 0;
    }
    ++m_count;
}

double RateWindow::rate(Clock::time_point now) const {
    if (m_start == Clock::time_point{}) return 0;
    auto elapsed = now - m_start;
    if (elapsed < kWindow) return m_last;
    if (elapsed < 2 * kWindow) return static_cast<double>(m_count);
    return 0;
}

HyperAllocStats HyperAllocDevice::stats() const {
    const Impl& d = *m_impl;
    HyperAllocStats s;
    s.guest_ram_bytes = d.guest_ram_bytes;
    std::shared_lock life(d.lifecycle);
    std::lock_guard zone(d.zone_mutex);
    s.target_bytes = d.target_frames * kFrameBytes;
    s.hard_reclaimed_bytes = d.hard_frames * kFrameBytes;
    s.soft_reclaimed_bytes = d.soft_frames * kFrameBytes;
    s.installs = d.counters.installs;
    s.install_requests = d.counters.install_requests;
    s.install_errors = d.counters.install_errors;
    s.installs_per_s = d.install_rate.rate(Clock::now());
    s.auto_reclaimed_bytes = d.counters.auto_reclaimed_frames * kFrameBytes;
    s.auto_limit_bytes = d.auto_limit_bytes.load();
    s.auto_paused = d.auto_paused.load();
    s.discard_calls = d.counters.discard_calls;
    s.bad_records = d.counters.bad_records;
    s.pagecache_shrink_pending = d.pagecache_outstanding;
    if (d.mem == nullptr || d.zones.empty()) return s;

    uint64_t free_bytes = 0;
    uint64_t cache_bytes = 0;
    bool any_cache = false;
    std::set<uint64_t> cache_counters;  // one per node, reported by each of its zones
    for (const Zone& z : d.zones) {
        s.zones.push_back(z.record.info);
        // Each term is clamped to RAM, so the sum of at most kMaxZones cannot wrap.
        free_bytes += counter_bytes(*d.mem, z.record.free_pages, d.guest_ram_bytes).value_or(0);
        if (z.record.file_pages && cache_counters.insert(z.record.file_pages->raw).second) {
            auto bytes = counter_bytes(*d.mem, *z.record.file_pages, d.guest_ram_bytes);
            if (bytes) {
                cache_bytes += *bytes;
                any_cache = true;
            }
        }
    }
    s.guest_free_bytes = std::min(free_bytes, d.guest_ram_bytes);
    if (any_cache) s.page_cache_bytes = std::min(cache_bytes, d.guest_ram_bytes);
    return s;
}

std::map<std::string, uint64_t> HyperAllocDevice::counters() const {
    const Impl& d = *m_impl;
    std::lock_guard zone(d.zone_mutex);
    return {{"zones", d.zones.size()},
            {"hard_frames", d.hard_frames},
            {"soft_frames", d.soft_frames},
            {"installs", d.counters.installs},
            {"install_errors", d.counters.install_errors},
            {"bad_records", d.counters.bad_records},
            {"discard_calls", d.counters.discard_calls},
            {"auto_reclaimed_frames", d.counters.auto_reclaimed_frames},
            {"target_frames", d.target_frames}};
}

}  // namespace vmm::balloon::hyperalloc
