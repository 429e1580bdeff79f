#include "memory/x86_64_layout.h"

#include <algorithm>

namespace vmm::memory::x86_64 {

std::vector<GuestRange> ram_layout(uint64_t ram_size) {
    // Defensive: callers round down already, but a stray tail must never produce an
    // unaligned region.
    ram_size -= ram_size % (4 * KiB);
    std::vector<GuestRange> ranges;
    if (ram_size == 0) return ranges;
    uint64_t low = std::min(ram_size, kMmioHoleStart);
    ranges.push_back({GuestAddress(0), low});
    // RAM that would overlap the MMIO hole is moved above it instead of being lost.
    if (ram_size > kMmioHoleStart) {
        ranges.push_back({GuestAddress(kHighRamStart), ram_size - kMmioHoleStart});
    }
    return ranges;
}

}  // namespace vmm::memory::x86_64
