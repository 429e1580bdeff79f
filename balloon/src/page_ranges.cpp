#include "balloon/page_ranges.h"

#include <algorithm>

namespace vmm::balloon {

std::vector<PfnRange> compact_page_frame_numbers(std::span<const uint32_t> pfns) {
    std::vector<uint32_t> sorted(pfns.begin(), pfns.end());
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());

    std::vector<PfnRange> ranges;
    for (uint32_t pfn : sorted) {
        // 64-bit arithmetic: first + count may be 2^32 when pfn is UINT32_MAX.
        if (!ranges.empty() && ranges.back().first + ranges.back().count == pfn) {
            ++ranges.back().count;
        } else {
            ranges.push_back({pfn, 1});
        }
    }
    return ranges;
}

namespace {

// The PFN of the first page of [addr, end) that no region covers; regions are sorted.
uint64_t first_hole_pfn(std::span<const memory::GuestRegion> regions, uint64_t addr) {
    for (const memory::GuestRegion& r : regions) {
        uint64_t start = r.start().raw;
        uint64_t end = start + r.size();  // validated regions never wrap
        if (addr >= start && addr < end) addr = end;
    }
    return addr >> kBalloonPfnShift;
}

}  // namespace

Result<std::vector<memory::GuestRange>> ranges_to_guest(const memory::GuestMemory& mem,
                                                        std::span<const PfnRange> ranges) {
    constexpr uint64_t kMaxPfn = UINT64_MAX >> kBalloonPfnShift;
    std::vector<memory::GuestRange> out;
    for (const PfnRange& range : ranges) {
        if (range.count == 0) continue;
        // Keeps addr + len strictly below 2^64, so GuestRange::end() never wraps.
        if (range.first > kMaxPfn || range.count > kMaxPfn - range.first) {
            return Error::msg("balloon page range at pfn {:#x} (+{} pages) overflows the "
                              "address space", range.first, range.count);
        }
        uint64_t addr = range.first << kBalloonPfnShift;
        uint64_t len = range.count << kBalloonPfnShift;
        if (!mem.contains(memory::GuestAddress(addr), len)) {
            // `contains` walks adjacent regions; find which page falls in a hole.
            uint64_t bad = first_hole_pfn(mem.regions(), addr);
            return Error::msg("balloon pfn {:#x} (guest address {:#x}) is not guest RAM", bad,
                              bad << kBalloonPfnShift);
        }
        // Split at region ends: each piece lies in exactly one region.
        for (const memory::GuestRegion& r : mem.regions()) {
            uint64_t start = r.start().raw;
            uint64_t end = start + r.size();
            uint64_t lo = std::max(start, addr);
            uint64_t hi = std::min(end, addr + len);
            if (lo < hi) out.push_back({memory::GuestAddress(lo), hi - lo});
        }
    }
    return out;
}

}  // namespace vmm::balloon
