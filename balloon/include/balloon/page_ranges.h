// Pure helpers for the balloon's page bookkeeping: turning a guest's list of page
// frame numbers into few contiguous ranges (one discard per range instead of one
// per page, as Firecracker's compact_page_frame_numbers), and mapping those ranges
// onto guest RAM regions. Balloon pages are always 4 KiB (VIRTIO_BALLOON_PFN_SHIFT).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/result.h"
#include "memory/guest_address.h"
#include "memory/guest_memory.h"

namespace vmm::balloon {

inline constexpr uint32_t kBalloonPfnShift = 12;
inline constexpr uint64_t kBalloonPageSize = 1ull << kBalloonPfnShift;

// [first, first + count) in 4 KiB page frames.
struct PfnRange {
    uint64_t first = 0;
    uint64_t count = 0;
    constexpr bool operator==(const PfnRange&) const = default;
};

// Sorts, drops duplicates and merges runs of consecutive PFNs. The result is sorted
// by `first`, its ranges never touch or overlap, and it is empty for empty input.
std::vector<PfnRange> compact_page_frame_numbers(std::span<const uint32_t> pfns);

// Converts page ranges to guest-physical ranges, splitting a range where it crosses
// from one RAM region into the next. Fails (naming the first offending PFN) when any
// page of any range is not guest RAM, or when a range overflows the address space;
// on failure nothing is returned, so a caller cannot act on a partial answer.
[[nodiscard]] Result<std::vector<memory::GuestRange>> ranges_to_guest(
    const memory::GuestMemory& mem, std::span<const PfnRange> ranges);

}  // namespace vmm::balloon
