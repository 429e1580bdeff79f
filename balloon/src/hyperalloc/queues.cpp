// The HyperAlloc queues. Every buffer is guest-controlled: a malformed zone record or
// install request is answered (logged, counted, an error status), and only a
// ring-level protocol error reported by Queue stops the device.
#include <algorithm>
#include <chrono>
#include <cstring>

#include "hyperalloc/device_impl.h"

namespace vmm::balloon::hyperalloc {

namespace dv = devices::virtio;

namespace {

const char* queue_name(uint16_t index) {
    if (index == HA_QUEUE_INFO) return "info";
    if (index == HA_QUEUE_NOTIFY) return "notify";
    return "install";
}

// Copies the first out.size() device-readable bytes of the chain (readable
// descriptors come first; each was checked to lie in guest RAM by Queue::pop).
Result<void> read_readable(const memory::GuestMemory& mem, const dv::DescriptorChain& chain,
                           std::span<std::byte> out) {
    size_t done = 0;
    for (const dv::Descriptor& d : chain.descriptors()) {
        if (done == out.size()) break;
        if (d.device_writable) continue;
        size_t n = std::min<size_t>(d.len, out.size() - done);
        VMM_TRY(mem.read(d.addr, out.subspan(done, n)));
        done += n;
    }
    if (done != out.size()) {
        return Error::msg("{} readable bytes, {} expected", chain.readable_bytes(), out.size());
    }
    return ok();
}

// Writes `in` across the chain's device-writable descriptors.
Result<void> write_writable(const memory::GuestMemory& mem, const dv::DescriptorChain& chain,
                            std::span<const std::byte> in) {
    size_t done = 0;
    for (const dv::Descriptor& d : chain.descriptors()) {
        if (done == in.size()) break;
        if (!d.device_writable) continue;
        size_t n = std::min<size_t>(d.len, in.size() - done);
        VMM_TRY(mem.write(d.addr, in.subspan(done, n)));
        done += n;
    }
    if (done != in.size()) return Error::msg("only {} writable bytes", chain.writable_bytes());
    return ok();
}

}  // namespace

void HyperAllocDevice::Impl::fail(const Error& error, Pending& pending) {
    log::error("hyperalloc: {}; the device needs a reset", error.message());
    broken = true;
    pending.needs_reset = true;
}

void HyperAllocDevice::Impl::drain(uint16_t index, Pending& pending) {
    dv::Queue& queue = queues[index];
    if (!queue.ready()) return;
    bool used = false;
    for (;;) {
        auto popped = queue.pop(*mem);
        if (!popped) return fail(popped.error().context(queue_name(index)), pending);
        if (!popped->has_value()) break;
        const dv::DescriptorChain& chain = **popped;
        uint32_t written = 0;
        if (index == HA_QUEUE_INFO) {
            take_zone_records(chain, pending);
        } else if (index == HA_QUEUE_NOTIFY) {
            take_notify(chain, pending);
        } else {
            written = complete_install(chain);
        }
        auto added = queue.add_used(*mem, chain.head(), written);
        if (!added) return fail(added.error().context(queue_name(index)), pending);
        used = true;
    }
    if (!used) return;
    auto notify = queue.needs_notification(*mem);
    if (!notify) return fail(notify.error().context(queue_name(index)), pending);
    if (*notify) pending.used_queues.push_back(index);
}

void HyperAllocDevice::Impl::take_zone_records(const dv::DescriptorChain& chain, Pending& pending) {
    constexpr uint64_t kRecord = sizeof(ha_zone_record);
    uint64_t bytes = chain.readable_bytes();
    std::lock_guard zone_lock(zone_mutex);
    if (bytes == 0 || bytes % kRecord != 0 || bytes > kMaxRecordsPerBuffer * kRecord) {
        ++counters.bad_records;
        warn_limited("hyperalloc: info buffer of {} bytes rejected: expected 1 to {} zone records "
                     "of {} bytes", bytes, kMaxRecordsPerBuffer, kRecord);
        return;
    }
    std::vector<ha_zone_record> records(bytes / kRecord);
    if (auto r = read_readable(*mem, chain, std::as_writable_bytes(std::span(records))); !r) {
        ++counters.bad_records;
        warn_limited("hyperalloc: info buffer unreadable: {}", r.error().message());
        return;
    }
    size_t taken = 0;
    for (size_t i = 0; i < records.size(); ++i) {
        std::vector<ValidatedZone> accepted;
        for (const Zone& z : zones) accepted.push_back(z.record);
        auto valid = validate_zone_record(records[i], *mem, accepted);
        if (!valid) {
            ++counters.bad_records;
            warn_limited("hyperalloc: zone record {} rejected: {}", i, valid.error().message());
            continue;
        }
        const ZoneInfo& info = valid->info;
        const Zone& zone = zones.emplace_back(*mem, *valid);
        ++taken;
        auto not_ram = static_cast<uint64_t>(std::count(zone.ram.begin(), zone.ram.end(), false));
        log::info("hyperalloc: zone {} of node {}: pfns {:#x}..{:#x}, instance base {:#x}, {} frames "
                  "of 2 MiB{}", zone_type_name(info.zone_type), info.node, info.start_pfn,
                  info.start_pfn + info.pages, info.base_pfn, zone.children(),
                  not_ram == 0 ? std::string()
                               : fmt::format(" ({} not RAM of one region: never reclaimed)", not_ram));
    }
    // The target may have been set before the guest was ready to be ballooned.
    if (taken > 0) apply_target(Trigger::zones_arrived, pending);
}

void HyperAllocDevice::Impl::take_notify(const dv::DescriptorChain& chain, Pending& pending) {
    uint32_t value = 0;
    if (auto r = read_readable(*mem, chain, std::as_writable_bytes(std::span(&value, 1))); !r) {
        warn_limited("hyperalloc: notify buffer ignored: {}", r.error().message());
        return;
    }
    if (value != HA_NOTIFY_PAGECACHE_DROPPED) {
        warn_limited("hyperalloc: unknown notify value {:#x} ignored", value);
        return;
    }
    std::lock_guard zone_lock(zone_mutex);
    pagecache_outstanding = false;
    if (!zones.empty()) apply_target(Trigger::pagecache_dropped, pending);
}

uint32_t HyperAllocDevice::Impl::complete_install(const dv::DescriptorChain& chain) {
    ha_install_request request{};
    uint32_t status = HA_INSTALL_ERR_RANGE;
    if (auto r = read_readable(*mem, chain, std::as_writable_bytes(std::span(&request, 1))); !r) {
        warn_limited("hyperalloc: malformed install request: {}", r.error().message());
        std::lock_guard zone_lock(zone_mutex);
        ++counters.install_requests;
        ++counters.install_errors;
    } else {
        status = install_frame(request);
    }
    if (chain.writable_bytes() < sizeof(status)) return 0;
    // x86_64 is little-endian: the native value is the le32.
    if (auto w = write_writable(*mem, chain, std::as_bytes(std::span(&status, 1))); !w) {
        warn_limited("hyperalloc: writing the install status: {}", w.error().message());
        return 0;
    }
    return sizeof(status);
}

uint32_t HyperAllocDevice::Impl::install_frame(const ha_install_request& request) {
    std::lock_guard zone_lock(zone_mutex);
    ++counters.install_requests;
    auto error = [this](uint32_t status) {
        ++counters.install_errors;
        return status;
    };
    Zone* zone = nullptr;
    for (Zone& z : zones) {
        if (z.record.info.node == request.node && z.record.info.zone_type == request.zone_type) zone = &z;
    }
    if (zone == nullptr) {
        warn_limited("hyperalloc: install request for unknown zone_type {} of node {}",
                     request.zone_type, request.node);
        return error(HA_INSTALL_ERR_ZONE);
    }
    if (request.frame >= zone->record.info.frames) {
        warn_limited("hyperalloc: install request for frame {:#x} of the {} zone, which has {:#x} "
                     "frames", request.frame, zone_type_name(request.zone_type),
                     zone->record.info.frames);
        return error(HA_INSTALL_ERR_RANGE);
    }
    uint64_t child = request.frame >> LLF_CHILD_ORDER;
    FrameState state = zone->states[child];
    if (state == FrameState::hard) {
        warn_limited("hyperalloc: guest asked to install frame {:#x} of the {} zone, which the host "
                     "holds (hard-reclaimed)", request.frame, zone_type_name(request.zone_type));
        return error(HA_INSTALL_ERR_HARD);
    }
    auto reclaimed = zone->view.is_reclaimed(child);
    if (!reclaimed) {
        warn_limited("hyperalloc: install: {}", reclaimed.error().message());
        return error(HA_INSTALL_ERR_BACKING);
    }
    if (!*reclaimed && state == FrameState::installed) return HA_INSTALL_OK;  // nothing to do

    // Back the memory (and make it reachable for DMA) before the guest learns that it
    // may use the frame: the bit is cleared last.
    memory::GuestAddress addr = zone->view.child_address(child);
    if (!zone->ram[child]) {
        warn_limited("hyperalloc: install of frame {:#x}: its 2 MiB at {:#x} are not RAM of one "
                     "region", request.frame, addr.raw);
        return error(HA_INSTALL_ERR_BACKING);
    }
    if (mapper && state != FrameState::installed) {
        if (auto m = mapper->map(addr, kFrameBytes); !m) {
            warn_limited("hyperalloc: DMA-mapping frame at {:#x}: {}", addr.raw, m.error().message());
            return error(HA_INSTALL_ERR_BACKING);
        }
    }
    if (auto p = mem->populate(addr, kFrameBytes); !p) {
        warn_limited("hyperalloc: {}", p.error().message());
        set_state(*zone, child, FrameState::installed);  // mapped already; no second map
        return error(HA_INSTALL_ERR_BACKING);
    }
    set_state(*zone, child, FrameState::installed);
    if (auto i = zone->view.install(child); !i) {
        warn_limited("hyperalloc: install: {}", i.error().message());
        return error(HA_INSTALL_ERR_BACKING);
    }
    ++counters.installs;
    install_rate.record(std::chrono::steady_clock::now());
    return HA_INSTALL_OK;
}

}  // namespace vmm::balloon::hyperalloc
