// The guest's e820 map, derived from the GuestMemory regions so it can never
// disagree with the memory slots KVM was given.
#include "vmm/boot/e820.h"

#include <algorithm>

#include "memory/x86_64_layout.h"
#include "vmm/boot/boot_layout.h"

namespace vmm::boot {

namespace {

// Adds [lo, hi) clipped to [lo, limit); nothing when the clip leaves it empty. Used
// for the low-memory entries so a tiny guest never advertises RAM it lacks.
void add_clipped(std::vector<E820Entry>& map, uint64_t lo, uint64_t hi, uint64_t limit,
                 uint32_t type) {
    hi = std::min(hi, limit);
    if (hi > lo) map.push_back({lo, hi - lo, type});
}

constexpr uint64_t kLegacyVgaStart = 0xa0000;  // end of the MP-table reservation

}  // namespace

std::vector<E820Entry> build_e820(const memory::GuestMemory& mem) {
    std::vector<E820Entry> map;
    auto regions = mem.regions();
    if (regions.empty()) return map;

    // The first region holds the legacy low-memory layout (boot structures, MP table,
    // BIOS area) and everything from 1 MiB. Layouts always start it at 0.
    uint64_t low_end = regions[0].start().raw + regions[0].size();
    add_clipped(map, 0, kEbdaStart, low_end, kE820Ram);
    add_clipped(map, kEbdaStart, kLegacyVgaStart, low_end, kE820Reserved);
    add_clipped(map, kBiosRomStart, kHighMemoryStart, low_end, kE820Reserved);
    add_clipped(map, kHighMemoryStart, low_end, low_end, kE820Ram);

    for (size_t i = 1; i < regions.size(); ++i) {
        map.push_back({regions[i].start().raw, regions[i].size(), kE820Ram});
    }

    // Linux only trusts an MCFG (PCI ECAM) window that the firmware reserved, and
    // Firecracker reserves it in e820 for the same reason. Never over RAM.
    namespace layout = memory::x86_64;
    constexpr uint64_t ecam_end = layout::kPciEcamBase + layout::kPciEcamSize;
    bool ecam_over_ram = std::any_of(regions.begin(), regions.end(), [&](const auto& r) {
        return r.start().raw < ecam_end && r.start().raw + r.size() > layout::kPciEcamBase;
    });
    if (!ecam_over_ram) {
        map.push_back({layout::kPciEcamBase, layout::kPciEcamSize, kE820Reserved});
    }
    std::sort(map.begin(), map.end(),
              [](const E820Entry& a, const E820Entry& b) { return a.addr < b.addr; });
    return map;
}

}  // namespace vmm::boot
