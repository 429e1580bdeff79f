#include "balloon/balloon_stats.h"

#include <algorithm>
#include <cstring>

namespace vmm::balloon {

std::optional<uint64_t>* BalloonStats::field(uint16_t tag) {
    // Same order as the tags; kept explicit so a reordering cannot go unnoticed.
    std::array<std::optional<uint64_t>*, kStatCount> fields = {
        &swap_in,          &swap_out,      &major_faults, &minor_faults,
        &free_memory,      &total_memory,  &available_memory, &disk_caches,
        &hugetlb_allocations, &hugetlb_failures, &oom_kill, &alloc_stall,
        &async_scan,       &direct_scan,   &async_reclaim, &direct_reclaim,
    };
    return tag < kStatCount ? fields[tag] : nullptr;
}

std::vector<std::pair<std::string_view, uint64_t>> BalloonStats::present() const {
    std::vector<std::pair<std::string_view, uint64_t>> out;
    // field() does not modify; a copy keeps this method const without a cast.
    BalloonStats copy = *this;
    for (uint16_t tag = 0; tag < kStatCount; ++tag) {
        if (auto* f = copy.field(tag); f->has_value()) out.emplace_back(kStatNames[tag], **f);
    }
    return out;
}

BalloonStats parse_stats(std::span<const std::byte> buffer) {
    BalloonStats stats;
    size_t entries = std::min<size_t>(buffer.size() / kStatEntrySize, kMaxStatEntries);
    for (size_t i = 0; i < entries; ++i) {
        const std::byte* at = buffer.data() + i * kStatEntrySize;
        uint16_t tag = 0;
        uint64_t val = 0;
        // x86_64 is little-endian, so a plain copy decodes le16/le64.
        std::memcpy(&tag, at, sizeof(tag));
        std::memcpy(&val, at + sizeof(tag), sizeof(val));
        if (auto* f = stats.field(tag)) *f = val;
    }
    stats.updated_at = std::chrono::system_clock::now();
    return stats;
}

}  // namespace vmm::balloon
