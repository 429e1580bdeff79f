// Creation, the virtio plumbing (features, config space, activation, reset, queue
// dispatch, the period timer) and the API entry points of the HyperAlloc device.
// Queue handling is in queues.cpp, the host operations in host_ops.cpp.
#include <sys/timerfd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "balloon/llfree/llfree.h"
#include "hyperalloc/device_impl.h"
#include "hyperalloc/frame_ranges.h"

namespace vmm::balloon::hyperalloc {

namespace dv = devices::virtio;

namespace {

Result<void> validate_options(const HyperAllocOptions& o, uint64_t guest_ram_bytes) {
    if (o.target_bytes % kFrameBytes != 0) {
        return Error::msg("hyperalloc: target of {} bytes is not a multiple of 2 MiB", o.target_bytes);
    }
    if (o.target_bytes != 0 && o.target_bytes >= guest_ram_bytes) {
        return Error::msg("hyperalloc: target of {} MiB is not below guest RAM ({} MiB)",
                          o.target_bytes >> 20, guest_ram_bytes >> 20);
    }
    if (o.auto_period < std::chrono::milliseconds(10)) {
        return Error::msg("hyperalloc: period of {} ms is below the minimum of 10 ms",
                          o.auto_period.count());
    }
    if (o.auto_limit_bytes % kFrameBytes != 0) {
        return Error::msg("hyperalloc: auto limit of {} bytes is not a multiple of 2 MiB",
                          o.auto_limit_bytes);
    }
    if (o.vcpus == 0 || o.vcpus > LLF_MAX_CPUS) {
        return Error::msg("hyperalloc: {} vCPUs (install queues); 1 to {} are supported", o.vcpus,
                          LLF_MAX_CPUS);
    }
    return ok();
}

}  // namespace

Zone::Zone(const memory::GuestMemory& mem, const ValidatedZone& validated)
    : record(validated), view(mem, validated.layout),
      states(validated.layout.children(), FrameState::installed),
      ram(validated.layout.children()) {
    for (uint64_t c = 0; c < ram.size(); ++c) ram[c] = child_is_ram(mem, validated.layout.base_pfn, c);
}

HyperAllocDevice::Impl::Impl(const HyperAllocOptions& opts, uint64_t ram_bytes, UniqueFd timer_fd)
    : options(opts), guest_ram_bytes(ram_bytes), timer(std::move(timer_fd)),
      queue_locks(std::make_unique<std::mutex[]>(2 + opts.vcpus)),
      target_frames(opts.target_bytes / kFrameBytes), auto_limit_bytes(opts.auto_limit_bytes) {}

void HyperAllocDevice::Impl::arm_timer(bool on) const {
    itimerspec spec{};
    if (on) {
        auto ms = options.auto_period.count();
        spec.it_interval.tv_sec = static_cast<time_t>(ms / 1000);
        spec.it_interval.tv_nsec = static_cast<long>((ms % 1000) * 1000000);
        spec.it_value = spec.it_interval;
    }
    if (::timerfd_settime(timer.get(), 0, &spec, nullptr) != 0) {
        log::error("hyperalloc: setting the period timer: {}", std::strerror(errno));
    }
}

void HyperAllocDevice::Impl::fire(const std::shared_ptr<dv::VirtioInterrupt>& irq,
                                  const Pending& pending) {
    if (!irq) return;
    for (uint16_t q : pending.used_queues) irq->signal_used_queue(q);
    if (pending.config_change) irq->signal_config_change();
    if (pending.needs_reset) irq->set_device_needs_reset();
}

Result<std::shared_ptr<HyperAllocDevice>> HyperAllocDevice::create(const HyperAllocOptions& options,
                                                                   uint64_t guest_ram_bytes) {
    VMM_TRY(validate_options(options, guest_ram_bytes));
    UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!timer) return Error::from_errno("hyperalloc: creating the period timerfd");
    auto impl = std::make_unique<Impl>(options, guest_ram_bytes, std::move(timer));
    return std::shared_ptr<HyperAllocDevice>(new HyperAllocDevice(std::move(impl), options));
}

HyperAllocDevice::HyperAllocDevice(std::unique_ptr<Impl> impl, const HyperAllocOptions& options)
    : m_options(options), m_impl(std::move(impl)) {}

HyperAllocDevice::~HyperAllocDevice() = default;

std::vector<uint16_t> HyperAllocDevice::queue_max_sizes() const {
    std::vector<uint16_t> sizes = {HA_INFO_QUEUE_SIZE, HA_NOTIFY_QUEUE_SIZE};
    sizes.insert(sizes.end(), m_options.vcpus, HA_INSTALL_QUEUE_SIZE);
    return sizes;
}

uint64_t HyperAllocDevice::device_features() const {
    // INDIRECT_DESC: an install request and its status need two descriptors, and the
    // install rings have one slot.
    uint64_t features = dv::kFeatureVersion1 | dv::kFeatureIndirectDesc;
    if (m_options.shrink_pagecache) features |= kFeatureShrinkPagecache;
    if (m_options.auto_mode) features |= kFeatureAutoMode;
    return features;
}

void HyperAllocDevice::read_config(uint64_t offset, std::span<std::byte> data) const {
    std::fill(data.begin(), data.end(), std::byte{0});
    if (offset >= kConfigSize) return;
    // x86_64 is little-endian: the native value is the le32.
    uint32_t value = m_impl->config_shrink_pagecache.load();
    size_t n = std::min<uint64_t>(data.size(), kConfigSize - offset);
    std::memcpy(data.data(), reinterpret_cast<const std::byte*>(&value) + offset, n);
}

void HyperAllocDevice::write_config(uint64_t offset, std::span<const std::byte> data) {
    if (offset != 0 || data.size() != sizeof(uint32_t)) {
        m_impl->warn_limited("hyperalloc: ignoring guest config write of {} bytes at offset {:#x} "
                             "(only shrink_pagecache, 4 bytes at offset 0, is writable)",
                             data.size(), offset);
        return;
    }
    uint32_t remainder = 0;
    std::memcpy(&remainder, data.data(), sizeof(remainder));
    m_impl->config_shrink_pagecache.store(remainder);
    log::debug("hyperalloc: guest could not drop {} pages of page cache", remainder);
}

Result<void> HyperAllocDevice::activate(dv::ActivateContext context) {
    Impl& d = *m_impl;
    if (context.memory == nullptr) return Error::msg("hyperalloc: activation without guest memory");
    if (context.queues.size() != d.queue_count()) {
        return Error::msg("hyperalloc: {} queues configured, the device has {} (info, notify, {} "
                          "install)", context.queues.size(), d.queue_count(), m_options.vcpus);
    }
    if (!context.queues[HA_QUEUE_INFO].ready()) {
        return Error::msg("hyperalloc: the info queue is not ready; the device cannot learn the zones");
    }
    for (dv::Queue& q : context.queues) {
        q.set_event_idx((context.acked_features & dv::kFeatureEventIdx) != 0);
        q.set_indirect_allowed((context.acked_features & dv::kFeatureIndirectDesc) != 0);
    }
    std::unique_lock life(d.lifecycle);
    d.mem = context.memory;
    d.interrupt = std::move(context.interrupt);
    d.queues = std::move(context.queues);
    d.acked = context.acked_features;
    d.broken = false;
    d.active = true;
    d.arm_timer(true);
    log::info("hyperalloc: active with {} install queues (auto mode {}, shrink page cache {})",
              m_options.vcpus, d.auto_mode() ? "on" : "off", d.shrink_pagecache() ? "on" : "off");
    return ok();
}

void HyperAllocDevice::reset() {
    Impl& d = *m_impl;
    std::unique_lock life(d.lifecycle);
    d.arm_timer(false);
    if (d.mem != nullptr) {
        std::lock_guard zone(d.zone_mutex);
        d.forget_zones();
    }
    d.active = false;
    d.broken = false;
    d.acked = 0;
    d.mem = nullptr;
    d.interrupt.reset();
    d.queues.clear();
    d.config_shrink_pagecache.store(0);
}

void HyperAllocDevice::process_queue(uint16_t index) {
    Impl& d = *m_impl;
    Pending pending;
    std::shared_ptr<dv::VirtioInterrupt> irq;
    {
        std::shared_lock life(d.lifecycle);
        if (!d.active || d.broken) return;
        if (index >= d.queues.size()) {
            d.warn_limited("hyperalloc: notification for queue {} which does not exist", index);
            return;
        }
        std::lock_guard queue(d.queue_locks[index]);
        d.drain(index, pending);
        irq = d.interrupt;
    }
    Impl::fire(irq, pending);
}

dv::NotifyPath HyperAllocDevice::notify_path(uint16_t index) const {
    return index >= HA_QUEUE_INSTALL_FIRST ? m_options.install_path : dv::NotifyPath::event_loop;
}

std::vector<int> HyperAllocDevice::backend_fds() const { return {m_impl->timer.get()}; }

void HyperAllocDevice::process_backend(int fd, uint32_t /*events*/) {
    Impl& d = *m_impl;
    if (fd != d.timer.get()) return;
    uint64_t expirations = 0;
    // Nonblocking and edge-triggered: one read drains the count; EAGAIN is spurious.
    if (::read(fd, &expirations, sizeof(expirations)) != static_cast<ssize_t>(sizeof(expirations))) {
        return;
    }
    Pending pending;
    std::shared_ptr<dv::VirtioInterrupt> irq;
    {
        std::shared_lock life(d.lifecycle);
        if (!d.active || d.broken) return;
        {
            std::lock_guard zone(d.zone_mutex);
            if (d.hard_frames != d.target_frames) d.apply_target(Trigger::timer, pending);
        }
        d.auto_pass();
        irq = d.interrupt;
    }
    Impl::fire(irq, pending);
}

Result<void> HyperAllocDevice::set_target(uint64_t bytes) {
    Impl& d = *m_impl;
    if (bytes % kFrameBytes != 0) {
        return Error::msg("hyperalloc: target of {} bytes is not a multiple of 2 MiB", bytes);
    }
    if (bytes != 0 && bytes >= d.guest_ram_bytes) {
        return Error::msg("hyperalloc: target of {} MiB is not below guest RAM ({} MiB)",
                          bytes >> 20, d.guest_ram_bytes >> 20);
    }
    Pending pending;
    std::shared_ptr<dv::VirtioInterrupt> irq;
    {
        std::shared_lock life(d.lifecycle);
        std::lock_guard zone(d.zone_mutex);
        d.target_frames = bytes / kFrameBytes;
        if (d.active && !d.broken && !d.zones.empty()) {
            d.apply_target(Trigger::set_target, pending);
            irq = d.interrupt;
        } else {
            log::info("hyperalloc: target {} MiB, applied once the guest reports its zones",
                      bytes >> 20);
        }
    }
    Impl::fire(irq, pending);
    return ok();
}

uint64_t HyperAllocDevice::target_bytes() const {
    std::lock_guard zone(m_impl->zone_mutex);
    return m_impl->target_frames * kFrameBytes;
}

void HyperAllocDevice::set_dma_mapper(std::shared_ptr<memory::DmaMapper> mapper) {
    std::lock_guard zone(m_impl->zone_mutex);
    m_impl->mapper = std::move(mapper);
}

Result<void> HyperAllocDevice::attach_dma_mapper(std::shared_ptr<memory::DmaMapper> mapper,
                                                 const memory::GuestMemory& mem) {
    if (!mapper) return Error::msg("hyperalloc: no DMA mapper");
    std::lock_guard zone(m_impl->zone_mutex);
    if (m_impl->mapper) return Error::msg("hyperalloc: a DMA mapper is already attached");
    // The reclaimed (soft or hard) frames, merged and sorted: everything else is backed.
    std::vector<memory::GuestRange> holes;
    for (const Zone& z : m_impl->zones) {
        std::vector<uint64_t> unbacked;
        for (uint64_t c = 0; c < z.children(); ++c)
            if (z.states[c] != FrameState::installed && z.ram[c]) unbacked.push_back(c);
        auto merged = merge_children(mem, z.record.info.base_pfn, std::move(unbacked));
        holes.insert(holes.end(), merged.begin(), merged.end());
    }
    std::sort(holes.begin(), holes.end(),
              [](const memory::GuestRange& a, const memory::GuestRange& b) { return a.start.raw < b.start.raw; });
    auto map_span = [&](uint64_t from, uint64_t to) -> Result<void> {
        if (to > from) VMM_TRY(mapper->map(memory::GuestAddress(from), to - from));
        return ok();
    };
    for (const memory::GuestRegion& region : mem.regions()) {
        uint64_t cursor = region.start().raw;
        const uint64_t end = cursor + region.size();
        for (const memory::GuestRange& hole : holes) {
            uint64_t h_start = std::max(hole.start.raw, cursor), h_end = std::min(hole.start.raw + hole.size, end);
            if (h_start >= h_end) continue;
            VMM_TRY(map_span(cursor, h_start));
            cursor = h_end;
        }
        VMM_TRY(map_span(cursor, end));
    }
    m_impl->mapper = std::move(mapper);
    return ok();
}

void HyperAllocDevice::detach_dma_mapper() {
    std::lock_guard zone(m_impl->zone_mutex);
    m_impl->mapper.reset();
}

Result<void> HyperAllocDevice::set_auto_limit(uint64_t bytes) {
    if (bytes % kFrameBytes != 0) {
        return Error::msg("hyperalloc: auto limit of {} bytes is not a multiple of 2 MiB", bytes);
    }
    m_impl->auto_limit_bytes.store(bytes);
    return ok();
}

void HyperAllocDevice::pause_auto(bool paused) { m_impl->auto_paused.store(paused); }

void HyperAllocDevice::run_auto_pass_for_test() {
    std::shared_lock life(m_impl->lifecycle);
    if (!m_impl->active || m_impl->broken) return;
    m_impl->auto_pass();
}

}  // namespace vmm::balloon::hyperalloc
