// The HyperAlloc shared-region validation (balloon/src/hyperalloc/zone_record.cpp):
// a sequence of ha_zone_records from the input is validated as the info queue
// does, each against the ones accepted before it, over one of a few guest RAM
// layouts. Every accepted zone must satisfy what the host relies on afterwards:
//   - zone type <= MOVABLE, node 0, each type once (so at most three zones);
//   - pfns non-empty, inside guest RAM, disjoint from every other zone;
//   - trees and lower arrays 64-byte aligned, exactly llf_*_bytes(frames) long,
//     each inside one RAM region (one slice), disjoint from each other and from
//     every other zone's arrays;
//   - the counters 8-byte aligned RAM outside every array.
//
// Input: u8 layout, then records of 56 bytes each (at most 16).
#include <cstring>
#include <vector>

#include "balloon/llfree/llfree_layout.h"
#include "hyperalloc/zone_record.h"
#include "support/fuzz_common.h"
#include "support/fuzz_input.h"

using namespace vmm;
using namespace vmm::balloon::hyperalloc;
using memory::GuestAddress;
using memory::GuestRange;

namespace {

constexpr uint64_t kMiB = 1ull << 20;

// Sparse mappings (nothing is touched): plain RAM, RAM split at 3 GiB with the PCI
// hole like the VMM's layout, and small adjacent regions.
const std::vector<std::vector<GuestRange>> kLayouts = {
    {{GuestAddress(0), 64 * kMiB}},
    {{GuestAddress(0), 3072 * kMiB}, {GuestAddress(4096 * kMiB), 1024 * kMiB}},
    {{GuestAddress(0), 2 * kMiB}, {GuestAddress(2 * kMiB), 2 * kMiB}, {GuestAddress(8 * kMiB), 8 * kMiB}},
};

bool overlap(const GuestRange& a, const GuestRange& b) {
    return a.start.raw < b.start.raw + b.size && b.start.raw < a.start.raw + a.size;
}

void check_zone(const memory::GuestMemory& mem, const ValidatedZone& v,
                const std::vector<ValidatedZone>& others) {
    const ZoneInfo& z = v.info;
    FUZZ_CHECK(z.zone_type <= HA_ZONE_MOVABLE && z.node == 0);
    FUZZ_CHECK(z.pages > 0);
    uint64_t end_pfn = z.start_pfn + z.pages;
    FUZZ_CHECK(end_pfn * LLF_FRAME_SIZE <= mem.end_address().raw);
    FUZZ_CHECK(z.base_pfn == llf_base_pfn(z.start_pfn) && z.frames == end_pfn - z.base_pfn);

    FUZZ_CHECK(v.trees_range.size == llf_trees_bytes(z.frames));
    FUZZ_CHECK(v.lower_range.size == llf_lower_bytes(z.frames));
    for (const GuestRange* r : {&v.trees_range, &v.lower_range}) {
        FUZZ_CHECK(r->start.raw % LLF_ALIGN == 0);
        FUZZ_CHECK(mem.slice(r->start, r->size).has_value());
    }
    FUZZ_CHECK(!overlap(v.trees_range, v.lower_range));
    FUZZ_CHECK(v.layout.trees == v.trees_range.start && v.layout.lower == v.lower_range.start);
    FUZZ_CHECK(v.layout.base_pfn == z.base_pfn && v.layout.frames == z.frames);

    std::vector<GuestAddress> counters = {v.free_pages};
    if (v.file_pages) counters.push_back(*v.file_pages);
    for (GuestAddress c : counters) {
        FUZZ_CHECK(c.raw % 8 == 0 && mem.contains(c, 8));
        GuestRange word{c, 8};
        FUZZ_CHECK(!overlap(word, v.trees_range) && !overlap(word, v.lower_range));
        for (const ValidatedZone& o : others) {
            FUZZ_CHECK(!overlap(word, o.trees_range) && !overlap(word, o.lower_range));
        }
    }
    for (const ValidatedZone& o : others) {
        FUZZ_CHECK(o.info.zone_type != z.zone_type);
        uint64_t o_end = o.info.start_pfn + o.info.pages;
        FUZZ_CHECK(end_pfn <= o.info.start_pfn || o_end <= z.start_pfn);
        for (const GuestRange* mine : {&v.trees_range, &v.lower_range}) {
            for (const GuestRange* theirs : {&o.trees_range, &o.lower_range}) {
                FUZZ_CHECK(!overlap(*mine, *theirs));
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static std::vector<memory::GuestMemory> memories = [] {
        std::vector<memory::GuestMemory> out;
        for (const auto& layout : kLayouts) out.push_back(vmm::fuzz::make_memory(layout));
        return out;
    }();
    vmm::fuzz::FuzzInput in(data, size);
    const memory::GuestMemory& mem = memories[in.u8() % memories.size()];

    std::vector<ValidatedZone> accepted;
    for (int i = 0; i < 16 && in.remaining() > 0; ++i) {
        ha_zone_record record{};
        auto bytes = in.bytes(sizeof(record));
        std::memcpy(&record, bytes.data(), bytes.size());
        auto v = validate_zone_record(record, mem, accepted);
        if (!v) {
            FUZZ_CHECK(!v.error().message().empty());
            continue;
        }
        check_zone(mem, *v, accepted);
        // The validated values are the record's own.
        FUZZ_CHECK(v->info.start_pfn == record.start_pfn && v->info.pages == record.pages);
        FUZZ_CHECK(v->trees_range.start.raw == record.trees_gpa &&
                   v->lower_range.start.raw == record.lower_gpa);
        FUZZ_CHECK(v->free_pages.raw == record.free_pages_gpa);
        FUZZ_CHECK(v->file_pages.has_value() == (record.file_pages_gpa != 0));
        accepted.push_back(*v);
        FUZZ_CHECK(accepted.size() <= kMaxZones);
    }
    return 0;
}
