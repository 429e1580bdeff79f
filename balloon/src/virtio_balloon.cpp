// Configuration, activation, the statistics timer and the API side of the balloon.
// Queue processing is in balloon_queues.cpp.
#include "balloon/virtio_balloon.h"

#include <sys/timerfd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vmm::balloon {

namespace dv = devices::virtio;

std::vector<QueueRole> queue_roles(uint64_t features) {
    std::vector<QueueRole> roles = {QueueRole::inflate, QueueRole::deflate};
    if (features & kFeatureStatsVq) roles.push_back(QueueRole::stats);
    if (features & kFeatureFreePageReporting) roles.push_back(QueueRole::reporting);
    return roles;
}

Result<std::shared_ptr<VirtioBalloon>> VirtioBalloon::create(const BalloonOptions& options,
                                                             uint64_t guest_ram_bytes) {
    UniqueFd timer;
    if (options.stats_polling_interval_s > 0) {
        timer.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
        if (!timer) return Error::from_errno("balloon: creating the statistics timerfd");
    }
    std::shared_ptr<VirtioBalloon> balloon(
        new VirtioBalloon(options, guest_ram_bytes, std::move(timer)));
    VMM_TRY_CTX(balloon->set_target(options.target_bytes), "balloon: initial target");
    return balloon;
}

VirtioBalloon::VirtioBalloon(const BalloonOptions& options, uint64_t guest_ram_bytes,
                             UniqueFd timer)
    : m_options(options), m_guest_ram_bytes(guest_ram_bytes), m_timer(std::move(timer)),
      m_stats_period(std::chrono::seconds(options.stats_polling_interval_s)) {}

VirtioBalloon::~VirtioBalloon() = default;

std::vector<uint16_t> VirtioBalloon::queue_max_sizes() const {
    return std::vector<uint16_t>(queue_roles(device_features()).size(), kBalloonQueueSize);
}

uint64_t VirtioBalloon::device_features() const {
    uint64_t features = dv::kFeatureVersion1;
    if (m_options.stats_polling_interval_s > 0) features |= kFeatureStatsVq;
    if (m_options.deflate_on_oom) features |= kFeatureDeflateOnOom;
    if (m_options.free_page_reporting) features |= kFeatureFreePageReporting;
    return features;
}

void VirtioBalloon::read_config(uint64_t offset, std::span<std::byte> data) const {
    std::array<std::byte, kConfigSize> config{};
    {
        std::lock_guard lock(m_mutex);
        // x86_64 is little-endian: native copies are the spec's le32.
        std::memcpy(config.data(), &m_target_pages, sizeof(uint32_t));
        std::memcpy(config.data() + kConfigActualOffset, &m_actual_pages, sizeof(uint32_t));
    }
    std::fill(data.begin(), data.end(), std::byte{0});
    if (offset >= kConfigSize) return;
    size_t n = std::min<uint64_t>(data.size(), kConfigSize - offset);
    std::memcpy(data.data(), config.data() + offset, n);
}

void VirtioBalloon::write_config(uint64_t offset, std::span<const std::byte> data) {
    // Only `actual` is the driver's to write; num_pages is the host's request.
    if (offset != kConfigActualOffset || data.size() != sizeof(uint32_t)) {
        warn_limited("balloon: ignoring guest config write of {} bytes at offset {:#x} "
                     "(only 'actual', 4 bytes at offset 4, is writable)", data.size(), offset);
        return;
    }
    uint32_t actual = 0;
    std::memcpy(&actual, data.data(), sizeof(actual));
    std::lock_guard lock(m_mutex);
    if (actual == m_actual_pages) return;
    m_actual_pages = actual;
    // The guest moves `actual` as it goes; reaching the target is the event users
    // (and the boot tests) wait for.
    if (actual == m_target_pages) {
        log::info("balloon: guest reached the target of {} pages ({} MiB)", actual, actual / 256);
    } else {
        log::debug("balloon: guest reports {} of {} pages", actual, m_target_pages);
    }
}

Result<void> VirtioBalloon::activate(dv::ActivateContext context) {
    if (context.memory == nullptr) return Error::msg("balloon activation without guest memory");
    std::vector<QueueRole> roles = queue_roles(context.acked_features);
    if (context.queues.size() < roles.size()) {
        return Error::msg("balloon: features {:#x} need {} queues, the transport has {}",
                          context.acked_features, roles.size(), context.queues.size());
    }
    // Queues the transport offered for features the driver did not take are unused.
    context.queues.erase(context.queues.begin() + static_cast<std::ptrdiff_t>(roles.size()),
                         context.queues.end());
    for (dv::Queue& q : context.queues) {
        q.set_event_idx((context.acked_features & dv::kFeatureEventIdx) != 0);
        q.set_indirect_allowed((context.acked_features & dv::kFeatureIndirectDesc) != 0);
    }
    std::lock_guard lock(m_mutex);
    m_mem = context.memory;
    m_interrupt = std::move(context.interrupt);
    m_queues = std::move(context.queues);
    m_roles = std::move(roles);
    m_acked = context.acked_features;
    m_active = true;
    m_broken = false;
    m_held_stats.reset();
    if (m_acked & kFeatureStatsVq) {
        // Linux primes the stats queue before DRIVER_OK; take that buffer now. Holding
        // it raises no interrupt, so nothing is signalled from the transport's thread.
        for (uint16_t i = 0; i < m_roles.size(); ++i) {
            if (m_roles[i] != QueueRole::stats || !m_queues[i].ready()) continue;
            auto popped = m_queues[i].pop(*m_mem);
            if (!popped) {
                m_broken = true;
                return popped.error().context("balloon stats queue");
            }
            if (popped->has_value()) {
                take_stats(**popped);
                m_held_stats = (*popped)->head();
            }
        }
        arm_timer(true);
    }
    return ok();
}

void VirtioBalloon::reset() {
    std::lock_guard lock(m_mutex);
    arm_timer(false);
    m_active = false;
    m_broken = false;
    m_acked = 0;
    m_mem = nullptr;
    m_interrupt.reset();
    m_queues.clear();
    m_roles.clear();
    m_held_stats.reset();
    // A reset driver holds no balloon pages any more.
    m_actual_pages = 0;
}

void VirtioBalloon::process_queue(uint16_t index) {
    Pending pending;
    std::shared_ptr<dv::VirtioInterrupt> irq;
    {
        std::lock_guard lock(m_mutex);
        if (!m_active || m_broken) return;
        if (index >= m_queues.size()) {
            warn_limited("balloon: notification for queue {} which is not in use", index);
            return;
        }
        drain_queue(index, pending);
        irq = m_interrupt;
    }
    fire(irq, pending);
}

std::map<std::string, uint64_t> VirtioBalloon::counters() const {
    BalloonCounters c = counter_values();
    return {{"pages_inflated", c.pages_inflated},
            {"pages_deflated", c.pages_deflated},
            {"pages_reported", c.pages_reported},
            {"inflate_discard_calls", c.inflate_discard_calls},
            {"pages_kept_pinned", c.pages_kept_pinned},
            {"bad_pfns", c.bad_pfns}};
}

std::vector<int> VirtioBalloon::backend_fds() const {
    if (!m_timer) return {};
    return {m_timer.get()};
}

void VirtioBalloon::process_backend(int fd, uint32_t /*events*/) {
    if (!m_timer || fd != m_timer.get()) return;
    uint64_t expirations = 0;
    // Nonblocking: a spurious wakeup (EAGAIN) must not return the buffer early.
    if (::read(m_timer.get(), &expirations, sizeof(expirations)) !=
        static_cast<ssize_t>(sizeof(expirations))) {
        return;
    }
    Pending pending;
    std::shared_ptr<dv::VirtioInterrupt> irq;
    {
        std::lock_guard lock(m_mutex);
        if (!m_active || m_broken) return;
        return_stats_buffer(pending);
        irq = m_interrupt;
    }
    fire(irq, pending);
}

Result<uint32_t> VirtioBalloon::pages_for(uint64_t bytes) const {
    if (bytes % memory::kPageSize != 0) {
        return Error::msg("balloon target of {} bytes is not a multiple of 4 KiB", bytes);
    }
    if (bytes > m_guest_ram_bytes) {
        return Error::msg("balloon target of {} MiB exceeds guest RAM ({} MiB)", bytes >> 20,
                          m_guest_ram_bytes >> 20);
    }
    uint64_t pages = bytes / memory::kPageSize;
    if (pages > UINT32_MAX) {
        return Error::msg("balloon target of {} pages does not fit the 32-bit num_pages", pages);
    }
    return static_cast<uint32_t>(pages);
}

Result<void> VirtioBalloon::set_target(uint64_t bytes) {
    uint32_t pages = VMM_TRY(pages_for(bytes));
    std::shared_ptr<dv::VirtioInterrupt> irq;
    {
        std::lock_guard lock(m_mutex);
        m_target_pages = pages;
        if (m_active) irq = m_interrupt;
    }
    // Outside the lock: the transport's interrupt may take the transport's own lock.
    if (irq) irq->signal_config_change();
    return ok();
}

uint32_t VirtioBalloon::target_pages() const {
    std::lock_guard lock(m_mutex);
    return m_target_pages;
}

uint32_t VirtioBalloon::actual_pages() const {
    std::lock_guard lock(m_mutex);
    return m_actual_pages;
}

std::optional<BalloonStats> VirtioBalloon::stats() const {
    std::lock_guard lock(m_mutex);
    return m_stats;
}

BalloonCounters VirtioBalloon::counter_values() const {
    std::lock_guard lock(m_mutex);
    return m_counters;
}

bool VirtioBalloon::stats_negotiated() const {
    std::lock_guard lock(m_mutex);
    return m_active && (m_acked & kFeatureStatsVq) != 0;
}

Result<void> VirtioBalloon::set_stats_interval(uint32_t seconds) {
    if (!m_timer) return Error::msg("balloon statistics were not enabled at boot");
    if (seconds == 0) {
        return Error::msg("balloon statistics cannot be turned off once the device exists");
    }
    std::lock_guard lock(m_mutex);
    m_stats_period = std::chrono::seconds(seconds);
    if (m_active && (m_acked & kFeatureStatsVq)) arm_timer(true);
    return ok();
}

void VirtioBalloon::set_stats_period_for_test(std::chrono::milliseconds period) {
    std::lock_guard lock(m_mutex);
    m_stats_period = period;
}

void VirtioBalloon::arm_timer(bool on) {
    if (!m_timer) return;
    itimerspec spec{};
    if (on) {
        auto ms = m_stats_period.count();
        spec.it_interval.tv_sec = static_cast<time_t>(ms / 1000);
        spec.it_interval.tv_nsec = static_cast<long>((ms % 1000) * 1000000);
        spec.it_value = spec.it_interval;
    }
    if (::timerfd_settime(m_timer.get(), 0, &spec, nullptr) != 0) {
        log::error("balloon: setting the statistics timer: {}", std::strerror(errno));
    }
}

void VirtioBalloon::fire(const std::shared_ptr<dv::VirtioInterrupt>& irq,
                         const Pending& pending) const {
    if (!irq) return;
    for (uint16_t q : pending.used_queues) irq->signal_used_queue(q);
    if (pending.needs_reset) irq->set_device_needs_reset();
}

}  // namespace vmm::balloon
