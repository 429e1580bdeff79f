#include "hyperalloc/frame_ranges.h"

#include <algorithm>

#include "balloon/llfree/llfree_layout.h"

namespace vmm::balloon::hyperalloc {

namespace {

// Index of the region holding addr, or SIZE_MAX.
size_t region_of(const memory::GuestMemory& mem, memory::GuestAddress addr) {
    auto regions = mem.regions();
    auto it = std::upper_bound(regions.begin(), regions.end(), addr,
                               [](memory::GuestAddress a, const memory::GuestRegion& r) {
                                   return a < r.start();
                               });
    if (it == regions.begin()) return SIZE_MAX;
    --it;
    if (addr.raw - it->start().raw >= it->size()) return SIZE_MAX;
    return static_cast<size_t>(it - regions.begin());
}

}  // namespace

memory::GuestAddress child_address(uint64_t base_pfn, uint64_t child) {
    return memory::GuestAddress((base_pfn + child * LLF_CHILD_FRAMES) << LLF_FRAME_SHIFT);
}

bool child_is_ram(const memory::GuestMemory& mem, uint64_t base_pfn, uint64_t child) {
    return mem.slice(child_address(base_pfn, child), LLF_CHILD_BYTES).has_value();
}

std::vector<memory::GuestRange> merge_children(const memory::GuestMemory& mem, uint64_t base_pfn,
                                               std::vector<uint64_t> children) {
    std::sort(children.begin(), children.end());
    children.erase(std::unique(children.begin(), children.end()), children.end());
    std::vector<memory::GuestRange> ranges;
    size_t last_region = SIZE_MAX;
    for (uint64_t child : children) {
        if (!child_is_ram(mem, base_pfn, child)) continue;
        memory::GuestAddress addr = child_address(base_pfn, child);
        size_t region = region_of(mem, addr);
        if (!ranges.empty() && region == last_region &&
            ranges.back().start.raw + ranges.back().size == addr.raw) {
            ranges.back().size += LLF_CHILD_BYTES;
        } else {
            ranges.push_back({addr, LLF_CHILD_BYTES});
        }
        last_region = region;
    }
    return ranges;
}

}  // namespace vmm::balloon::hyperalloc
