#include "hyperalloc/zone_record.h"

namespace vmm::balloon::hyperalloc {

namespace {

using memory::GuestAddress;
using memory::GuestRange;

// Both ranges were checked to lie inside RAM, so their ends do not wrap.
bool overlap(const GuestRange& a, const GuestRange& b) {
    return a.start.raw < b.start.raw + b.size && b.start.raw < a.start.raw + a.size;
}

// A shared array: `align`-aligned and entirely inside one RAM region (the host
// accesses each entry with one atomic, and a slice never spans regions).
Result<GuestRange> check_array(const memory::GuestMemory& mem, const char* field, uint64_t gpa,
                               uint64_t bytes) {
    if (gpa % LLF_ALIGN != 0) {
        return Error::msg("{} {:#x} is not {}-byte aligned", field, gpa, LLF_ALIGN);
    }
    if (auto s = mem.slice(GuestAddress(gpa), bytes); !s) {
        return Error::msg("{} {:#x}: its {} bytes are not inside one guest RAM region", field,
                          gpa, bytes);
    }
    return GuestRange{GuestAddress(gpa), bytes};
}

// A shared s64 counter: 8-byte aligned guest RAM (so one atomic reaches it).
Result<void> check_counter(const memory::GuestMemory& mem, const char* field, uint64_t gpa) {
    if (gpa % kCounterAlign != 0) {
        return Error::msg("{} {:#x} is not {}-byte aligned", field, gpa, kCounterAlign);
    }
    if (!mem.contains(GuestAddress(gpa), kCounterAlign)) {
        return Error::msg("{} {:#x} is not guest RAM", field, gpa);
    }
    return ok();
}

Result<void> check_zone_identity(const ha_zone_record& r, std::span<const ValidatedZone> accepted) {
    if (r.zone_type > HA_ZONE_MOVABLE) {
        return Error::msg("zone_type {} is not 0 (DMA32), 1 (NORMAL) or 2 (MOVABLE)", r.zone_type);
    }
    if (r.node != 0) return Error::msg("node {}: only node 0 is supported (UMA)", r.node);
    for (const ValidatedZone& z : accepted) {
        if (z.info.node == r.node && z.info.zone_type == r.zone_type) {
            return Error::msg("zone_type {} ({}) of node {} was already reported", r.zone_type,
                              zone_type_name(r.zone_type), r.node);
        }
    }
    // The rules above admit at most kMaxZones zones.
    return ok();
}

Result<void> check_pfn_range(const ha_zone_record& r, const memory::GuestMemory& mem,
                             std::span<const ValidatedZone> accepted) {
    if (r.pages == 0) return Error::msg("pages 0: the zone is empty");
    uint64_t end_pfn = uint64_t{r.start_pfn} + r.pages;
    if (end_pfn > (uint64_t{1} << 32)) {
        return Error::msg("pages {:#x} from start_pfn {:#x} overflows the 32-bit pfn", r.pages,
                          r.start_pfn);
    }
    uint64_t ram_end = mem.end_address().raw;
    if (end_pfn > ram_end / LLF_FRAME_SIZE) {
        return Error::msg("pages {:#x} from start_pfn {:#x} end at {:#x}, past the end of guest "
                          "RAM at {:#x}", r.pages, r.start_pfn, end_pfn * LLF_FRAME_SIZE, ram_end);
    }
    for (const ValidatedZone& z : accepted) {
        uint64_t z_end = z.info.start_pfn + z.info.pages;
        if (r.start_pfn < z_end && z.info.start_pfn < end_pfn) {
            return Error::msg("start_pfn {:#x} + pages {:#x} overlaps the {} zone (pfns {:#x}..{:#x})",
                              r.start_pfn, r.pages, zone_type_name(z.info.zone_type),
                              z.info.start_pfn, z_end);
        }
    }
    return ok();
}

Result<void> check_arrays_disjoint(const ValidatedZone& v, std::span<const ValidatedZone> accepted) {
    if (overlap(v.trees_range, v.lower_range)) {
        return Error::msg("trees_gpa {:#x} (+{:#x}) overlaps lower_gpa {:#x} (+{:#x})",
                          v.trees_range.start.raw, v.trees_range.size, v.lower_range.start.raw,
                          v.lower_range.size);
    }
    for (const ValidatedZone& z : accepted) {
        for (const GuestRange* mine : {&v.trees_range, &v.lower_range}) {
            for (const GuestRange* theirs : {&z.trees_range, &z.lower_range}) {
                if (!overlap(*mine, *theirs)) continue;
                return Error::msg("{} {:#x} (+{:#x}) overlaps an array of the {} zone at {:#x}",
                                  mine == &v.trees_range ? "trees_gpa" : "lower_gpa",
                                  mine->start.raw, mine->size, zone_type_name(z.info.zone_type),
                                  theirs->start.raw);
            }
        }
    }
    return ok();
}

// The host CASes the counters; one inside an allocator array would let those writes
// change allocator state, so it is refused.
Result<void> check_counter_outside_arrays(const char* field, uint64_t gpa, const ValidatedZone& v,
                                          std::span<const ValidatedZone> accepted) {
    GuestRange counter{GuestAddress(gpa), kCounterAlign};
    auto clash = [&](const ValidatedZone& z) {
        return overlap(counter, z.trees_range) || overlap(counter, z.lower_range);
    };
    bool bad = clash(v);
    for (const ValidatedZone& z : accepted) bad = bad || clash(z);
    if (bad) return Error::msg("{} {:#x} lies inside an LLFree array", field, gpa);
    return ok();
}

}  // namespace

const char* zone_type_name(uint32_t zone_type) {
    switch (zone_type) {
        case HA_ZONE_DMA32: return "DMA32";
        case HA_ZONE_NORMAL: return "NORMAL";
        case HA_ZONE_MOVABLE: return "MOVABLE";
    }
    return "unknown";
}

Result<ValidatedZone> validate_zone_record(const ha_zone_record& r, const memory::GuestMemory& mem,
                                           std::span<const ValidatedZone> accepted) {
    VMM_TRY(check_zone_identity(r, accepted));
    VMM_TRY(check_pfn_range(r, mem, accepted));

    ValidatedZone v;
    v.info.node = r.node;
    v.info.zone_type = r.zone_type;
    v.info.start_pfn = r.start_pfn;
    v.info.pages = r.pages;
    v.info.base_pfn = llf_base_pfn(r.start_pfn);
    v.info.frames = uint64_t{r.start_pfn} + r.pages - v.info.base_pfn;

    v.trees_range = VMM_TRY(check_array(mem, "trees_gpa", r.trees_gpa, llf_trees_bytes(v.info.frames)));
    v.lower_range = VMM_TRY(check_array(mem, "lower_gpa", r.lower_gpa, llf_lower_bytes(v.info.frames)));
    VMM_TRY(check_arrays_disjoint(v, accepted));

    VMM_TRY(check_counter(mem, "free_pages_gpa", r.free_pages_gpa));
    VMM_TRY(check_counter_outside_arrays("free_pages_gpa", r.free_pages_gpa, v, accepted));
    v.free_pages = GuestAddress(r.free_pages_gpa);
    if (r.file_pages_gpa != 0) {
        VMM_TRY(check_counter(mem, "file_pages_gpa", r.file_pages_gpa));
        VMM_TRY(check_counter_outside_arrays("file_pages_gpa", r.file_pages_gpa, v, accepted));
        v.file_pages = GuestAddress(r.file_pages_gpa);
    }
    // Never read by the host; checked only so that a confused guest is told early.
    if (r.local_gpa != 0 && !mem.contains(GuestAddress(r.local_gpa), 1)) {
        return Error::msg("local_gpa {:#x} is not guest RAM", r.local_gpa);
    }

    v.layout.base_pfn = v.info.base_pfn;
    v.layout.frames = v.info.frames;
    v.layout.trees = v.trees_range.start;
    v.layout.lower = v.lower_range.start;
    return v;
}

}  // namespace vmm::balloon::hyperalloc
