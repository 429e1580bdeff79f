// The e820 memory map handed to the guest in the zero page.
#pragma once

#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

namespace vmm::boot {

inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;

struct E820Entry {
    uint64_t addr = 0;
    uint64_t size = 0;
    uint32_t type = kE820Ram;
    bool operator==(const E820Entry&) const = default;
};

// Sorted by address: RAM [0, 0x9fc00), reserved [0x9fc00, 0xa0000) (MP table),
// reserved [0xf0000, 0x100000) (BIOS area), RAM [1 MiB, end of the first region),
// the PCI ECAM window reserved, and every further region as RAM. Entries are
// clipped to the RAM that exists, so tiny guests get a sane (shorter) map.
std::vector<E820Entry> build_e820(const memory::GuestMemory& mem);

}  // namespace vmm::boot
