#include "memory/guest_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace vmm::memory {

namespace {

bool page_aligned(uint64_t value) { return value % kPageSize == 0; }

// Rejects a layout before anything is mapped: each range non-empty, page-aligned and
// not wrapping; sorted ranges must not overlap.
Result<void> validate_layout(std::span<const GuestRange> sorted) {
    if (sorted.empty()) return Error::msg("guest memory layout has no regions");
    for (size_t i = 0; i < sorted.size(); ++i) {
        const GuestRange& r = sorted[i];
        if (r.size == 0) {
            return Error::msg("guest RAM region at {:#x} is empty", r.start.raw);
        }
        if (!page_aligned(r.start.raw) || !page_aligned(r.size)) {
            return Error::msg("guest RAM region [{:#x}, +{:#x}) is not {:#x}-aligned",
                              r.start.raw, r.size, kPageSize);
        }
        if (!r.end()) {
            return Error::msg("guest RAM region [{:#x}, +{:#x}) wraps past 2^64", r.start.raw,
                              r.size);
        }
        if (i > 0 && r.start.raw < *sorted[i - 1].end()) {
            return Error::msg("guest RAM regions [{:#x}, +{:#x}) and [{:#x}, +{:#x}) overlap",
                              sorted[i - 1].start.raw, sorted[i - 1].size, r.start.raw,
                              r.size);
        }
    }
    return ok();
}

// Validated regions never wrap, so their end fits in 64 bits.
uint64_t region_end(const GuestRegion& r) { return r.start().raw + r.size(); }

}  // namespace

Result<GuestMemory> GuestMemory::create(std::span<const GuestRange> layout,
                                        const MappingOptions& options) {
    std::vector<GuestRange> sorted(layout.begin(), layout.end());
    std::sort(sorted.begin(), sorted.end(),
              [](const GuestRange& a, const GuestRange& b) { return a.start < b.start; });
    VMM_TRY(validate_layout(sorted));

    std::vector<GuestRegion> regions;
    regions.reserve(sorted.size());
    for (const GuestRange& r : sorted) {
        MmapRegion mapping = VMM_TRY_CTX(
            MmapRegion::create(r.size, options),
            fmt::format("mapping guest RAM [{:#x}, +{:#x})", r.start.raw, r.size));
        regions.emplace_back(r.start, std::move(mapping));
    }
    return GuestMemory(std::move(regions));
}

uint64_t GuestMemory::total_size() const {
    uint64_t total = 0;
    for (const GuestRegion& r : m_regions) total += r.size();
    return total;
}

GuestAddress GuestMemory::end_address() const {
    if (m_regions.empty()) return GuestAddress(0);
    return GuestAddress(region_end(m_regions.back()));
}

int GuestMemory::find_region(GuestAddress addr) const {
    // The first region starting above addr; the candidate is the one before it.
    auto it = std::upper_bound(m_regions.begin(), m_regions.end(), addr,
                               [](GuestAddress a, const GuestRegion& r) { return a < r.start(); });
    if (it == m_regions.begin()) return -1;
    --it;
    if (addr.raw >= region_end(*it)) return -1;
    return static_cast<int>(it - m_regions.begin());
}

Result<size_t> GuestMemory::check_span(GuestAddress addr, uint64_t len, const char* what) const {
    auto end = addr.checked_add(len);
    if (!end) {
        return Error::msg("guest {} of {:#x} bytes at {:#x}: range wraps past 2^64", what, len,
                          addr.raw);
    }
    int first = find_region(addr);
    if (first < 0) {
        return Error::msg("guest {} of {:#x} bytes at {:#x}: address is not guest RAM", what,
                          len, addr.raw);
    }
    // Walk forward while the access continues into a region that starts exactly where
    // the previous one ends; any gap is a hole (MMIO) or the end of RAM.
    size_t i = static_cast<size_t>(first);
    uint64_t covered = region_end(m_regions[i]);
    while (covered < end->raw) {
        if (i + 1 == m_regions.size() || m_regions[i + 1].start().raw != covered) {
            return Error::msg("guest {} of {:#x} bytes at {:#x}: {:#x} is not guest RAM", what,
                              len, addr.raw, covered);
        }
        ++i;
        covered = region_end(m_regions[i]);
    }
    return static_cast<size_t>(first);
}

template <typename Fn>
void GuestMemory::for_each_chunk(size_t first, GuestAddress addr, uint64_t len, Fn&& fn) const {
    uint64_t done = 0;
    uint64_t offset = addr.raw - m_regions[first].start().raw;
    for (size_t i = first; done < len; ++i, offset = 0) {
        const GuestRegion& r = m_regions[i];
        uint64_t chunk = std::min(len - done, r.size() - offset);
        fn(r.m_mapping.host_at(offset), done, chunk);
        done += chunk;
    }
}

bool GuestMemory::contains(GuestAddress addr, uint64_t len) const {
    if (len == 0) return find_region(addr) >= 0;
    return check_span(addr, len, "access").has_value();
}

Result<void> GuestMemory::read(GuestAddress addr, std::span<std::byte> out) const {
    if (out.empty()) return ok();
    size_t first = VMM_TRY(check_span(addr, out.size(), "read"));
    for_each_chunk(first, addr, out.size(), [&](std::byte* host, uint64_t done, uint64_t n) {
        std::memcpy(out.data() + done, host, n);
    });
    return ok();
}

Result<void> GuestMemory::write(GuestAddress addr, std::span<const std::byte> in) const {
    if (in.empty()) return ok();
    // Validated in full first, so a bad tail never leaves a half-written head.
    size_t first = VMM_TRY(check_span(addr, in.size(), "write"));
    for_each_chunk(first, addr, in.size(), [&](std::byte* host, uint64_t done, uint64_t n) {
        std::memcpy(host, in.data() + done, n);
    });
    return ok();
}

Result<void> GuestMemory::fill(GuestAddress addr, uint64_t len, std::byte value) const {
    if (len == 0) return ok();
    size_t first = VMM_TRY(check_span(addr, len, "fill"));
    for_each_chunk(first, addr, len, [&](std::byte* host, uint64_t, uint64_t n) {
        std::memset(host, std::to_integer<int>(value), n);
    });
    return ok();
}

Result<VolatileSlice> GuestMemory::slice(GuestAddress addr, uint64_t len) const {
    int idx = find_region(addr);
    if (idx < 0) {
        return Error::msg("guest slice of {:#x} bytes at {:#x}: address is not guest RAM", len,
                          addr.raw);
    }
    const GuestRegion& r = m_regions[static_cast<size_t>(idx)];
    uint64_t offset = addr.raw - r.start().raw;
    if (len > r.size() - offset) {
        return Error::msg("guest slice of {:#x} bytes at {:#x} crosses the end of its region "
                          "at {:#x}", len, addr.raw, region_end(r));
    }
    return VolatileSlice(addr, r.m_mapping.host_at(offset), len);
}

Result<GuestMemory::PageWindow> GuestMemory::page_window(GuestAddress addr, uint64_t len,
                                                         const char* what) const {
    if (!page_aligned(addr.raw) || !page_aligned(len)) {
        return Error::msg("guest {} of {:#x} bytes at {:#x}: not page-aligned", what, len,
                          addr.raw);
    }
    int idx = find_region(addr);
    if (idx < 0) {
        return Error::msg("guest {} of {:#x} bytes at {:#x}: address is not guest RAM", what,
                          len, addr.raw);
    }
    const GuestRegion& r = m_regions[static_cast<size_t>(idx)];
    uint64_t offset = addr.raw - r.start().raw;
    if (len > r.size() - offset) {
        return Error::msg("guest {} of {:#x} bytes at {:#x} crosses the end of its region "
                          "at {:#x}", what, len, addr.raw, region_end(r));
    }
    return PageWindow{&r, offset};
}

Result<void> GuestMemory::discard(GuestAddress addr, uint64_t len) const {
    PageWindow w = VMM_TRY(page_window(addr, len, "discard"));
    VMM_TRY_CTX(w.region->m_mapping.discard(w.offset, len),
                fmt::format("guest discard of {:#x} bytes at {:#x}", len, addr.raw));
    return ok();
}

Result<void> GuestMemory::populate(GuestAddress addr, uint64_t len) const {
    PageWindow w = VMM_TRY(page_window(addr, len, "populate"));
    VMM_TRY_CTX(w.region->m_mapping.populate(w.offset, len),
                fmt::format("guest populate of {:#x} bytes at {:#x}", len, addr.raw));
    return ok();
}

Result<std::byte*> GuestMemory::aligned_host(GuestAddress addr, uint64_t size) const {
    if (addr.raw % size != 0) {
        return Error::msg("guest atomic access of {} bytes at {:#x}: address is misaligned", size,
                          addr.raw);
    }
    int idx = find_region(addr);
    if (idx < 0) {
        return Error::msg("guest atomic access of {} bytes at {:#x}: address is not guest RAM",
                          size, addr.raw);
    }
    const GuestRegion& r = m_regions[static_cast<size_t>(idx)];
    uint64_t offset = addr.raw - r.start().raw;
    // Page-aligned regions make a naturally aligned word fit; checked all the same.
    if (size > r.size() - offset) {
        return Error::msg("guest atomic access of {} bytes at {:#x} crosses a region end", size,
                          addr.raw);
    }
    return r.m_mapping.host_at(offset);
}

}  // namespace vmm::memory
