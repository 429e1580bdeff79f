// The host operations on the guest's LLFree zones: applying the target (hard reclaim
// to shrink, return to grow), the auto-mode soft-reclaim pass, discards of merged
// ranges, the shared free-page counters, and giving everything back at reset.
// The guest changes its allocator state at any moment and may be hostile: a refused
// or failed step skips that frame, it never stops the device.
#include <algorithm>
#include <array>
#include <chrono>
#include <thread>

#include "hyperalloc/device_impl.h"
#include "hyperalloc/frame_ranges.h"

namespace vmm::balloon::hyperalloc {

namespace {

// Shrink takes memory from the zones the guest needs least first.
constexpr std::array<uint32_t, 3> kShrinkOrder = {HA_ZONE_NORMAL, HA_ZONE_MOVABLE, HA_ZONE_DMA32};
// A guest flipping its counter cannot keep the host in the CAS loop.
constexpr int kCounterCasTries = 64;

std::vector<size_t> zones_in_order(const std::vector<Zone>& zones, bool reverse) {
    std::vector<size_t> order;
    for (uint32_t type : kShrinkOrder) {
        for (size_t i = 0; i < zones.size(); ++i) {
            if (zones[i].record.info.zone_type == type) order.push_back(i);
        }
    }
    if (reverse) std::reverse(order.begin(), order.end());
    return order;
}

// A tree entry that cannot hold an entirely free child right now: skip its 8
// children without touching them (a hint only; the CAS steps decide).
bool tree_has_free_child(const llfree::HostView& view, uint64_t tree) {
    auto entry = view.tree_entry(tree);
    return entry && !llf_tree_reserved(*entry) && llf_tree_free(*entry) >= LLF_CHILD_FRAMES &&
           llf_tree_free(*entry) <= LLF_TREE_FRAMES;
}

double ms_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void HyperAllocDevice::Impl::set_state(Zone& zone, uint64_t child, FrameState state) {
    auto count = [this](FrameState s) -> uint64_t* {
        if (s == FrameState::hard) return &hard_frames;
        if (s == FrameState::soft) return &soft_frames;
        return nullptr;
    };
    FrameState& current = zone.states[child];
    if (uint64_t* c = count(current)) --*c;
    if (uint64_t* c = count(state)) ++*c;
    current = state;
}

void HyperAllocDevice::Impl::adjust_free_pages(const Zone& zone, int64_t pages) const {
    memory::GuestAddress addr = zone.record.free_pages;
    auto old = mem->load<uint64_t>(addr, std::memory_order_acquire);
    for (int i = 0; old && i < kCounterCasTries; ++i) {
        // The counter is the guest's s64; wrapping arithmetic keeps a garbage value
        // garbage without undefined behaviour.
        uint64_t desired = *old + static_cast<uint64_t>(pages);
        auto seen = mem->compare_exchange<uint64_t>(addr, *old, desired);
        if (seen && *seen == *old) return;
        old = seen;
    }
    warn_limited("hyperalloc: could not adjust the {} zone's free-page counter at {:#x} by {} ({})",
                 zone_type_name(zone.record.info.zone_type), addr.raw, pages,
                 old ? "too contended" : old.error().message());
}

void HyperAllocDevice::Impl::discard_children(Zone& zone, std::vector<uint64_t> children) {
    if (children.empty()) return;
    for (const memory::GuestRange& r : merge_children(*mem, zone.record.info.base_pfn, std::move(children))) {
        // Unmapped first: the device must never DMA into memory the host gave away.
        if (mapper) {
            if (auto u = mapper->unmap(r.start, r.size); !u) {
                log::error("hyperalloc: DMA-unmapping [{:#x}, +{:#x}): {}; its memory stays backed",
                           r.start.raw, r.size, u.error().message());
                continue;
            }
        }
        if (auto d = mem->discard(r.start, r.size); !d) {
            log::error("hyperalloc: {}", d.error().message());
            continue;
        }
        ++counters.discard_calls;
    }
}

uint64_t HyperAllocDevice::Impl::shrink(uint64_t frames) {
    uint64_t taken = 0;
    for (size_t zi : zones_in_order(zones, false)) {
        Zone& zone = zones[zi];
        std::vector<uint64_t> to_discard;
        uint64_t taken_here = 0;
        // Soft-reclaimed children first: they are free and already unbacked.
        for (FrameState pass : {FrameState::soft, FrameState::installed}) {
            for (uint64_t tree = 0; tree < zone.record.layout.tree_count() && taken < frames; ++tree) {
                if (!tree_has_free_child(zone.view, tree)) continue;
                uint64_t end = std::min<uint64_t>((tree + 1) * LLF_TREE_CHILDREN, zone.children());
                for (uint64_t c = tree * LLF_TREE_CHILDREN; c < end && taken < frames; ++c) {
                    if (zone.states[c] != pass || !zone.ram[c]) continue;
                    auto result = zone.view.hard_reclaim(c);
                    if (!result) {
                        warn_limited("hyperalloc: hard reclaim: {}", result.error().message());
                        continue;
                    }
                    if (*result == llfree::HardReclaim::refused) continue;
                    // Only a child that was unbacked on both sides needs no discard.
                    if (pass == FrameState::installed || *result == llfree::HardReclaim::taken) {
                        to_discard.push_back(c);
                    }
                    set_state(zone, c, FrameState::hard);
                    ++taken_here;
                    ++taken;
                }
            }
        }
        if (taken_here == 0) continue;
        adjust_free_pages(zone, -static_cast<int64_t>(taken_here * kChildPages));
        discard_children(zone, std::move(to_discard));
    }
    return taken;
}

uint64_t HyperAllocDevice::Impl::grow(uint64_t frames) {
    uint64_t returned = 0;
    for (size_t zi : zones_in_order(zones, true)) {
        Zone& zone = zones[zi];
        uint64_t given_back = 0;
        for (uint64_t c = zone.children(); c-- > 0 && returned < frames;) {
            if (zone.states[c] != FrameState::hard) continue;
            auto result = zone.view.return_child(c);
            if (!result) {
                warn_limited("hyperalloc: return: {}", result.error().message());
                continue;
            }
            if (*result) {
                ++given_back;
            } else {
                // The guest changed an entry it does not own. The memory is unbacked,
                // which is what "soft" means; keeping it "hard" would stall the balloon.
                warn_limited("hyperalloc: child {} of the {} zone was changed by the guest while "
                             "hard-reclaimed; considered returned", c,
                             zone_type_name(zone.record.info.zone_type));
            }
            set_state(zone, c, FrameState::soft);
            ++returned;
        }
        if (given_back > 0) adjust_free_pages(zone, static_cast<int64_t>(given_back * kChildPages));
    }
    return returned;
}

void HyperAllocDevice::Impl::apply_target(Trigger trigger, Pending& pending) {
    if (zones.empty()) return;
    auto start = std::chrono::steady_clock::now();
    uint64_t reclaimed = 0;
    uint64_t returned = 0;
    if (hard_frames < target_frames) reclaimed = shrink(target_frames - hard_frames);
    else if (hard_frames > target_frames) returned = grow(hard_frames - target_frames);
    double ms = ms_since(start);

    uint64_t short_by = target_frames > hard_frames ? target_frames - hard_frames : 0;
    if (short_by > 0 && shrink_pagecache()) {
        // Ask again only when the request is new or the last one was answered; the
        // guest's "dropped" notification retries without asking (no ping-pong).
        bool ask = trigger == Trigger::set_target || trigger == Trigger::zones_arrived ||
                   (trigger == Trigger::timer && !pagecache_outstanding);
        if (ask) {
            uint64_t pages = std::min<uint64_t>(short_by * kChildPages, UINT32_MAX);
            config_shrink_pagecache.store(static_cast<uint32_t>(pages));
            pagecache_outstanding = true;
            pending.config_change = true;
        }
    } else if (short_by == 0 && config_shrink_pagecache.load() != 0) {
        config_shrink_pagecache.store(0);  // nothing more to drop
        pagecache_outstanding = false;
        pending.config_change = true;
    }

    bool report = trigger == Trigger::set_target || reclaimed + returned > 0 ||
                  (trigger == Trigger::zones_arrived && target_frames > 0);
    if (!report) return;
    std::string what = returned > 0 ? fmt::format("{} frames returned", returned)
                                    : fmt::format("{} frames hard-reclaimed", reclaimed);
    std::string shortfall;
    if (short_by > 0) {
        shortfall = fmt::format("; short by {} MiB{}", short_by * (kFrameBytes >> 20),
                                shrink_pagecache() ? ", asked the guest to drop page cache" : "");
    }
    log::info("hyperalloc: balloon at {} MiB of {} MiB target ({} in {:.3f} ms{})",
              hard_frames * (kFrameBytes >> 20), target_frames * (kFrameBytes >> 20), what, ms,
              shortfall);
}

void HyperAllocDevice::Impl::auto_pass() {
    if (!auto_mode() || auto_paused.load()) return;
    uint64_t limit_bytes = auto_limit_bytes.load();
    uint64_t limit = limit_bytes == 0 ? UINT64_MAX : limit_bytes / kFrameBytes;
    uint64_t done = 0;
    for (size_t zi = 0; done < limit; ++zi) {
        uint64_t next = 0;  // the next child of this zone to look at
        bool zone_done = false;
        while (!zone_done && done < limit) {
            std::lock_guard zone_lock(zone_mutex);
            if (zi >= zones.size()) return;  // reset forgot them, or all zones walked
            Zone& zone = zones[zi];
            std::vector<uint64_t> batch;
            while (next < zone.children() && batch.size() < kAutoBatch && done + batch.size() < limit) {
                uint64_t c = next++;
                if (c % LLF_TREE_CHILDREN == 0 && !tree_has_free_child(zone.view, c / LLF_TREE_CHILDREN)) {
                    next = c + LLF_TREE_CHILDREN;
                    continue;
                }
                if (zone.states[c] != FrameState::installed || !zone.ram[c]) continue;
                auto result = zone.view.soft_reclaim(c);
                if (!result) {
                    warn_limited("hyperalloc: soft reclaim: {}", result.error().message());
                    continue;
                }
                if (!*result) continue;
                set_state(zone, c, FrameState::soft);
                batch.push_back(c);
            }
            zone_done = next >= zone.children();
            done += batch.size();
            counters.auto_reclaimed_frames += batch.size();
            // Under the lock: an install of one of these frames must wait until its
            // memory is gone, or the discard would wipe what the guest wrote.
            discard_children(zone, std::move(batch));
        }
        std::this_thread::yield();  // let waiting installs take the lock
    }
}

void HyperAllocDevice::Impl::forget_zones() {
    if (hard_frames > 0) {
        // Best effort: the guest is resetting its driver and may have changed anything.
        grow(hard_frames);
    }
    if (mapper) {
        for (Zone& zone : zones) {
            std::vector<uint64_t> unmapped;
            for (uint64_t c = 0; c < zone.children(); ++c) {
                if (zone.states[c] != FrameState::installed && zone.ram[c]) unmapped.push_back(c);
            }
            for (const memory::GuestRange& r : merge_children(*mem, zone.record.info.base_pfn, std::move(unmapped))) {
                if (auto m = mapper->map(r.start, r.size); !m) {
                    log::error("hyperalloc: DMA-mapping [{:#x}, +{:#x}) at reset: {}", r.start.raw,
                               r.size, m.error().message());
                }
            }
        }
    }
    if (!zones.empty()) {
        log::info("hyperalloc: device reset; {} zones forgotten ({} frames could not be "
                  "returned)", zones.size(), hard_frames);
    }
    zones.clear();
    hard_frames = 0;
    soft_frames = 0;
    pagecache_outstanding = false;
}

}  // namespace vmm::balloon::hyperalloc
