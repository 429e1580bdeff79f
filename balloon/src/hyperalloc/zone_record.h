// Validation of the zone records the guest posts on the info queue. Pure: it reads
// only the record, the guest RAM layout and the zones already accepted, so each rule
// is testable on its own. A record is accepted whole or rejected with a message that
// names the offending field and its value.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "balloon/hyperalloc/hyperalloc_abi.h"
#include "balloon/hyperalloc/hyperalloc_device.h"
#include "balloon/llfree/llfree_host.h"
#include "common/result.h"
#include "memory/guest_memory.h"

namespace vmm::balloon::hyperalloc {

// Node 0 only and each zone type once: at most three zones (DMA32, NORMAL, MOVABLE),
// which bounds the host's state.
inline constexpr size_t kMaxZones = 3;
// Alignment of the shared counters (an s64 the guest updates atomically).
inline constexpr uint64_t kCounterAlign = 8;

struct ValidatedZone {
    ZoneInfo info;
    llfree::InstanceLayout layout;
    memory::GuestRange trees_range;
    memory::GuestRange lower_range;
    memory::GuestAddress free_pages;
    std::optional<memory::GuestAddress> file_pages;  // the record's 0 means none
};

// Checks one record against guest RAM and the zones accepted before it (including
// those earlier in the same buffer).
[[nodiscard]] Result<ValidatedZone> validate_zone_record(const ha_zone_record& record,
                                                         const memory::GuestMemory& mem,
                                                         std::span<const ValidatedZone> accepted);

const char* zone_type_name(uint32_t zone_type);

}  // namespace vmm::balloon::hyperalloc
