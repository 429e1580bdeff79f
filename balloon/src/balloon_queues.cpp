// The balloon's virtqueues. Every buffer is guest-controlled: descriptors of the
// wrong direction or size are skipped, PFNs outside RAM are counted and skipped,
// and only a ring-level protocol error (reported by Queue) stops the device.
#include <algorithm>
#include <cstring>

#include "balloon/page_ranges.h"
#include "balloon/virtio_balloon.h"

namespace vmm::balloon {

namespace dv = devices::virtio;

namespace {

const char* role_name(QueueRole role) {
    switch (role) {
        case QueueRole::inflate: return "inflate";
        case QueueRole::deflate: return "deflate";
        case QueueRole::stats: return "stats";
        case QueueRole::reporting: return "reporting";
    }
    return "?";
}

}  // namespace

void VirtioBalloon::fail(const Error& error, Pending& pending) {
    if (m_log_limit.allow()) log::error("balloon: {}; the device needs a reset", error.message());
    m_broken = true;
    pending.needs_reset = true;
}

void VirtioBalloon::drain_queue(uint16_t index, Pending& pending) {
    dv::Queue& queue = m_queues[index];
    QueueRole role = m_roles[index];
    if (!queue.ready()) return;
    bool used = false;
    for (;;) {
        auto popped = queue.pop(*m_mem);
        if (!popped) return fail(popped.error().context(role_name(role)), pending);
        if (!popped->has_value()) break;
        const dv::DescriptorChain& chain = **popped;
        switch (role) {
            case QueueRole::inflate: inflate(chain); break;
            case QueueRole::deflate:
                // No MUST_TELL_HOST: the pages were discarded at inflate and fault
                // back in as zeroes, so deflate is only counted.
                m_counters.pages_deflated += read_pfns(chain, "deflate").size();
                break;
            case QueueRole::reporting: report_free_pages(chain); break;
            case QueueRole::stats:
                if (!m_held_stats) {
                    take_stats(chain);
                    m_held_stats = chain.head();
                    continue;  // kept until the timer asks for a new sample
                }
                warn_limited("balloon: driver is not compliant: a second stats buffer "
                             "while one is held; returning it unread");
                break;
        }
        auto added = queue.add_used(*m_mem, chain.head(), 0);
        if (!added) return fail(added.error().context(role_name(role)), pending);
        used = true;
    }
    if (!used) return;
    auto notify = queue.needs_notification(*m_mem);
    if (!notify) return fail(notify.error().context(role_name(role)), pending);
    if (*notify) pending.used_queues.push_back(index);
}

std::vector<uint32_t> VirtioBalloon::read_pfns(const dv::DescriptorChain& chain,
                                               const char* queue_name) {
    std::vector<uint32_t> pfns;
    for (const dv::Descriptor& d : chain.descriptors()) {
        if (d.device_writable || d.len == 0 || d.len % sizeof(uint32_t) != 0 ||
            d.len > kMaxPfnsPerDescriptor * sizeof(uint32_t)) {
            warn_limited("balloon {}: skipping descriptor at {:#x} (len {}, {}): expected a "
                         "read-only array of at most {} le32 PFNs", queue_name, d.addr.raw,
                         d.len, d.device_writable ? "device-writable" : "read-only",
                         kMaxPfnsPerDescriptor);
            continue;
        }
        size_t first = pfns.size();
        pfns.resize(first + d.len / sizeof(uint32_t));
        // x86_64 is little-endian: the le32 array reads as native uint32_t.
        auto out = std::as_writable_bytes(std::span(pfns).subspan(first));
        if (auto r = m_mem->read(d.addr, out); !r) {
            warn_limited("balloon {}: {}", queue_name, r.error().message());
            pfns.resize(first);
        }
    }
    return pfns;
}

void VirtioBalloon::inflate(const dv::DescriptorChain& chain) {
    std::vector<uint32_t> pfns = read_pfns(chain, "inflate");
    // Drop PFNs outside RAM one by one, so one bad PFN cannot veto its neighbours.
    auto bad = std::partition(pfns.begin(), pfns.end(), [this](uint32_t pfn) {
        return m_mem->contains(memory::GuestAddress(uint64_t{pfn} << kBalloonPfnShift),
                               kBalloonPageSize);
    });
    for (auto it = bad; it != pfns.end(); ++it) {
        ++m_counters.bad_pfns;
        warn_limited("balloon inflate: pfn {:#x} (guest address {:#x}) is not guest RAM; "
                     "skipped", *it, uint64_t{*it} << kBalloonPfnShift);
    }
    pfns.erase(bad, pfns.end());

    std::vector<PfnRange> ranges = compact_page_frame_numbers(pfns);
    auto guest = ranges_to_guest(*m_mem, ranges);
    if (!guest) {  // cannot happen after the filter above; never discard on doubt
        warn_limited("balloon inflate: {}", guest.error().message());
        return;
    }
    for (const memory::GuestRange& r : *guest) {
        if (m_pinned.load()) {
            m_counters.pages_kept_pinned += r.size / kBalloonPageSize;
            continue;
        }
        if (auto d = m_mem->discard(r.start, r.size); !d) {
            log::error("balloon inflate: {}", d.error().message());
            continue;
        }
        ++m_counters.inflate_discard_calls;
        m_counters.pages_inflated += r.size / kBalloonPageSize;
    }
}

void VirtioBalloon::report_free_pages(const dv::DescriptorChain& chain) {
    // Linux sends the reported ranges as device-writable buffers; either direction
    // is accepted since the device never reads or writes their contents.
    for (const dv::Descriptor& d : chain.descriptors()) {
        uint64_t addr = d.addr.raw;
        if (d.len == 0 || addr % kBalloonPageSize != 0 || d.len % kBalloonPageSize != 0 ||
            !m_mem->contains(d.addr, d.len)) {
            warn_limited("balloon reporting: skipping range [{:#x}, +{:#x}): not page-aligned "
                         "guest RAM", addr, d.len);
            continue;
        }
        PfnRange range{addr >> kBalloonPfnShift, d.len / kBalloonPageSize};
        auto guest = ranges_to_guest(*m_mem, std::span(&range, 1));
        if (!guest) {
            warn_limited("balloon reporting: {}", guest.error().message());
            continue;
        }
        for (const memory::GuestRange& r : *guest) {
            if (m_pinned.load()) {
                m_counters.pages_kept_pinned += r.size / kBalloonPageSize;
                continue;
            }
            if (auto res = m_mem->discard(r.start, r.size); !res) {
                log::error("balloon reporting: {}", res.error().message());
                continue;
            }
            m_counters.pages_reported += r.size / kBalloonPageSize;
        }
    }
}

void VirtioBalloon::take_stats(const dv::DescriptorChain& chain) {
    constexpr size_t kMaxBytes = size_t{kMaxStatEntries} * kStatEntrySize;
    std::vector<std::byte> buffer;
    for (const dv::Descriptor& d : chain.descriptors()) {
        if (d.device_writable) continue;
        size_t take = std::min<size_t>(d.len, kMaxBytes - buffer.size());
        if (take == 0) break;
        size_t first = buffer.size();
        buffer.resize(first + take);
        if (auto r = m_mem->read(d.addr, std::span(buffer).subspan(first)); !r) {
            warn_limited("balloon stats: {}", r.error().message());
            buffer.resize(first);
            break;
        }
    }
    if (chain.readable_bytes() > kMaxBytes) {
        warn_limited("balloon stats: buffer of {} bytes; only the first {} entries are read",
                     chain.readable_bytes(), kMaxStatEntries);
    }
    m_stats = parse_stats(buffer);
}

void VirtioBalloon::return_stats_buffer(Pending& pending) {
    if (!m_held_stats) return;  // the guest has not refilled it yet
    for (uint16_t i = 0; i < m_roles.size(); ++i) {
        if (m_roles[i] != QueueRole::stats) continue;
        dv::Queue& queue = m_queues[i];
        uint16_t head = *m_held_stats;
        m_held_stats.reset();
        if (auto r = queue.add_used(*m_mem, head, 0); !r) {
            return fail(r.error().context("stats"), pending);
        }
        auto notify = queue.needs_notification(*m_mem);
        if (!notify) return fail(notify.error().context("stats"), pending);
        if (*notify) pending.used_queues.push_back(i);
        return;
    }
}

}  // namespace vmm::balloon
