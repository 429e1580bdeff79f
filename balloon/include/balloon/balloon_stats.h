// Guest memory statistics from the balloon's stats queue (virtio 1.2 §5.5.6.3).
// Field names follow Firecracker's API; tags follow Linux
// include/uapi/linux/virtio_balloon.h (VIRTIO_BALLOON_S_*). Every value is a hint
// from the guest: untrusted, possibly stale, possibly absent.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace vmm::balloon {

inline constexpr uint16_t kStatSwapIn = 0;
inline constexpr uint16_t kStatSwapOut = 1;
inline constexpr uint16_t kStatMajorFaults = 2;
inline constexpr uint16_t kStatMinorFaults = 3;
inline constexpr uint16_t kStatFreeMemory = 4;
inline constexpr uint16_t kStatTotalMemory = 5;
inline constexpr uint16_t kStatAvailableMemory = 6;
inline constexpr uint16_t kStatDiskCaches = 7;
inline constexpr uint16_t kStatHugetlbAllocations = 8;
inline constexpr uint16_t kStatHugetlbFailures = 9;
inline constexpr uint16_t kStatOomKill = 10;
inline constexpr uint16_t kStatAllocStall = 11;
inline constexpr uint16_t kStatAsyncScan = 12;
inline constexpr uint16_t kStatDirectScan = 13;
inline constexpr uint16_t kStatAsyncReclaim = 14;
inline constexpr uint16_t kStatDirectReclaim = 15;
inline constexpr uint16_t kStatCount = 16;

// One entry on the wire: struct virtio_balloon_stat { le16 tag; le64 val; } packed.
inline constexpr uint32_t kStatEntrySize = 10;
// Entries parsed from one buffer; Linux sends 16 at most, the rest is ignored.
inline constexpr uint32_t kMaxStatEntries = 64;

// API names, indexed by tag.
inline constexpr std::array<std::string_view, kStatCount> kStatNames = {
    "swap_in",          "swap_out",          "major_faults",        "minor_faults",
    "free_memory",      "total_memory",      "available_memory",    "disk_caches",
    "hugetlb_allocations", "hugetlb_failures", "oom_kill",           "alloc_stall",
    "async_scan",       "direct_scan",       "async_reclaim",       "direct_reclaim",
};

struct BalloonStats {
    std::optional<uint64_t> swap_in;
    std::optional<uint64_t> swap_out;
    std::optional<uint64_t> major_faults;
    std::optional<uint64_t> minor_faults;
    std::optional<uint64_t> free_memory;
    std::optional<uint64_t> total_memory;
    std::optional<uint64_t> available_memory;
    std::optional<uint64_t> disk_caches;
    std::optional<uint64_t> hugetlb_allocations;
    std::optional<uint64_t> hugetlb_failures;
    std::optional<uint64_t> oom_kill;
    std::optional<uint64_t> alloc_stall;
    std::optional<uint64_t> async_scan;
    std::optional<uint64_t> direct_scan;
    std::optional<uint64_t> async_reclaim;
    std::optional<uint64_t> direct_reclaim;
    // When the guest's buffer was parsed (wall clock, for the API's JSON).
    std::chrono::system_clock::time_point updated_at{};

    // The field for `tag`, nullptr for tags this build does not know.
    std::optional<uint64_t>* field(uint16_t tag);
    // (name, value) for every field the guest reported, in tag order.
    std::vector<std::pair<std::string_view, uint64_t>> present() const;
};

// Parses packed {le16 tag, le64 val} entries (at most kMaxStatEntries; a trailing
// partial entry and unknown tags are ignored; a repeated tag keeps the last value).
BalloonStats parse_stats(std::span<const std::byte> buffer);

}  // namespace vmm::balloon
