// Zone records on the info queue: every validation rule rejects only the bad record
// (logged with the field and its value, counted in bad_records) while a good record
// in the same buffer is still taken.
#include <cstring>
#include <functional>

#include "hyperalloc_test_support.h"

using namespace vmm::balloon::hyperalloc;
using namespace vmm::balloon::hyperalloc::test;

namespace {

// Two adjacent RAM regions, so that "inside one region" differs from "inside RAM".
std::vector<vmm::memory::GuestRange> two_regions() {
    return {{GuestAddress(0), 32 * kMiB}, {GuestAddress(32 * kMiB), 32 * kMiB}};
}

struct Rule {
    const char* name;
    bool good_first;  // the good record is posted (and accepted) before the bad one
    std::function<void(ha_zone_record& bad, const ha_zone_record& good)> mutate;
    const char* expected_log;
};

const std::vector<Rule>& rules() {
    static const std::vector<Rule> r = {
        {"zone_type outside DMA32/NORMAL/MOVABLE", false, [](auto& b, auto&) { b.zone_type = 7; },
         "zone_type 7 is not"},
        {"node other than 0", false, [](auto& b, auto&) { b.node = 1; }, "node 1: only node 0"},
        {"no pages", false, [](auto& b, auto&) { b.pages = 0; }, "pages 0: the zone is empty"},
        {"pfn overflow", false,
         [](auto& b, auto&) {
             b.start_pfn = 0xfffff000u;
             b.pages = 0x2000;
         },
         "pages 0x2000 from start_pfn 0xfffff000 overflows the 32-bit pfn"},
        {"zone past the end of RAM", false, [](auto& b, auto&) { b.pages = (80 * kMiB - kZoneStart) / 4096; },
         "pages 0x4c00 from start_pfn 0x400 end at 0x5000000, past the end of guest RAM at 0x4000000"},
        {"trees unaligned", false, [](auto& b, auto&) { b.trees_gpa += 8; },
         "trees_gpa 0x300008 is not 64-byte aligned"},
        {"trees outside RAM", false, [](auto& b, auto&) { b.trees_gpa = 0x10000000; },
         "trees_gpa 0x10000000: its 64 bytes are not inside one guest RAM region"},
        {"lower unaligned", false, [](auto& b, auto&) { b.lower_gpa += 32; },
         "lower_gpa 0x301020 is not 64-byte aligned"},
        {"lower across two RAM regions", false, [](auto& b, auto&) { b.lower_gpa = 32 * kMiB - 1024; },
         "lower_gpa 0x1fffc00: its 1152 bytes are not inside one guest RAM region"},
        {"trees overlapping lower", false, [](auto& b, auto&) { b.trees_gpa = b.lower_gpa + 64; },
         "trees_gpa 0x301040 (+0x40) overlaps lower_gpa 0x301000"},
        {"arrays overlapping another zone's", true, [](auto& b, auto& g) { b.lower_gpa = g.lower_gpa; },
         "lower_gpa 0x321000 (+0x480) overlaps an array of the NORMAL zone"},
        {"pfn range overlapping another zone", true, [](auto& b, auto&) { b.pages += 4096; },
         "start_pfn 0x400 + pages 0x2c00 overlaps the NORMAL zone (pfns 0x2000..0x4000)"},
        {"(node, zone_type) twice", true, [](auto& b, auto&) { b.zone_type = HA_ZONE_NORMAL; },
         "zone_type 1 (NORMAL) of node 0 was already reported"},
        {"free_pages unaligned", false, [](auto& b, auto&) { b.free_pages_gpa += 4; },
         "free_pages_gpa 0x310004 is not 8-byte aligned"},
        {"free_pages outside RAM", false, [](auto& b, auto&) { b.free_pages_gpa = 0x10000000; },
         "free_pages_gpa 0x10000000 is not guest RAM"},
        {"free_pages inside the arrays", false, [](auto& b, auto&) { b.free_pages_gpa = b.lower_gpa + 8; },
         "free_pages_gpa 0x301008 lies inside an LLFree array"},
        {"file_pages unaligned", false, [](auto& b, auto&) { b.file_pages_gpa += 2; },
         "file_pages_gpa 0x31000a is not 8-byte aligned"},
        {"file_pages outside RAM", false, [](auto& b, auto&) { b.file_pages_gpa = 0x20000000; },
         "file_pages_gpa 0x20000000 is not guest RAM"},
        {"local outside RAM", false, [](auto& b, auto&) { b.local_gpa = 0x30000000; },
         "local_gpa 0x30000000 is not guest RAM"},
    };
    return r;
}

}  // namespace

TEST_CASE("each zone-record rule rejects only the bad record", "[hyperalloc][zone_record]") {
    for (const Rule& rule : rules()) {
        DYNAMIC_SECTION(rule.name) {
            Harness h({}, two_regions());
            // DMA32 [4, 32) MiB and NORMAL [32, 64) MiB.
            GuestZone& bad_zone = h.add_zone(HA_ZONE_DMA32, kZoneStart / 4096, 28 * kMiB / 4096);
            GuestZone& good_zone = h.add_zone(HA_ZONE_NORMAL, 32 * kMiB / 4096, 32 * kMiB / 4096);
            REQUIRE(h.activate().has_value());
            ha_zone_record bad = bad_zone.record;
            rule.mutate(bad, good_zone.record);
            LogCapture log;
            if (rule.good_first) h.post_records({good_zone.record, bad});
            else h.post_records({bad, good_zone.record});

            CHECK(h.counter("bad_records") == 1);
            CHECK(h.counter("zones") == 1);
            std::string expected = fmt::format("zone record {} rejected: {}", rule.good_first ? 1 : 0,
                                               rule.expected_log);
            INFO(log.text());
            CHECK(log.contains(expected));
            auto stats = h.dev->stats();
            REQUIRE(stats.zones.size() == 1);
            CHECK(stats.zones[0].zone_type == HA_ZONE_NORMAL);
            CHECK(stats.zones[0].base_pfn == 32 * kMiB / 4096);
            CHECK(stats.zones[0].frames == 32 * kMiB / 4096);
            // The buffer was completed.
            CHECK(h.rings[HA_QUEUE_INFO].used_idx() == 1);
            CHECK(h.irq->needs_reset == 0);
        }
    }
}

TEST_CASE("valid records: all zones of a buffer are taken, file_pages may be absent",
          "[hyperalloc][zone_record]") {
    Harness h({}, two_regions());
    GuestZone& dma = h.add_zone(HA_ZONE_DMA32, kZoneStart / 4096, 28 * kMiB / 4096);
    h.add_zone(HA_ZONE_NORMAL, 32 * kMiB / 4096, 32 * kMiB / 4096);
    dma.record.file_pages_gpa = 0;
    dma.record.local_gpa = 0;
    REQUIRE(h.activate().has_value());
    LogCapture log;
    h.post_zones();
    CHECK(h.counter("zones") == 2);
    CHECK(h.counter("bad_records") == 0);
    CHECK(log.contains("hyperalloc: zone DMA32 of node 0: pfns 0x400..0x2000, instance base 0x400, 14 frames"));
    CHECK(log.contains("hyperalloc: zone NORMAL of node 0: pfns 0x2000..0x4000"));
    auto stats = h.dev->stats();
    REQUIRE(stats.zones.size() == 2);
    CHECK(stats.zones[0].zone_type == HA_ZONE_DMA32);
    CHECK(stats.zones[0].start_pfn == 0x400);
    CHECK(stats.zones[0].pages == 28 * kMiB / 4096);
}

TEST_CASE("an unaligned instance start is aligned down to 4 MiB", "[hyperalloc][zone_record]") {
    Harness h;
    // Starts at 5 MiB: base 4 MiB; the first MiB of the instance stays allocated.
    GuestZone& z = h.add_zone(HA_ZONE_NORMAL, 5 * kMiB / 4096, 59 * kMiB / 4096);
    REQUIRE(h.activate().has_value());
    h.post_zones();
    REQUIRE(h.counter("zones") == 1);
    ZoneInfo info = h.dev->stats().zones.at(0);
    CHECK(info.base_pfn == 1024);
    CHECK(info.frames == 60 * kMiB / 4096);
    CHECK(z.children() == 30);
}

TEST_CASE("an info buffer that is not a whole number of records is rejected whole",
          "[hyperalloc][zone_record]") {
    Harness h;
    GuestZone& z = add_default_zone(h);
    REQUIRE(h.activate().has_value());
    LogCapture log;
    std::vector<std::byte> bytes(sizeof(ha_zone_record) + 1);
    std::memcpy(bytes.data(), &z.record, sizeof(z.record));
    h.post_info_bytes(bytes);
    CHECK(h.counter("bad_records") == 1);
    CHECK(h.counter("zones") == 0);
    CHECK(log.contains("info buffer of 57 bytes rejected"));
    CHECK(h.rings[HA_QUEUE_INFO].used_idx() == 1);

    // The device keeps working: the same record, alone, is taken.
    h.post_zones();
    CHECK(h.counter("zones") == 1);
    CHECK(h.irq->needs_reset == 0);
}

TEST_CASE("a zone reported again after it was taken is rejected", "[hyperalloc][zone_record]") {
    Harness h;
    add_default_zone(h);
    REQUIRE(h.activate().has_value());
    h.post_zones();
    LogCapture log;
    h.post_zones();
    CHECK(h.counter("zones") == 1);
    CHECK(h.counter("bad_records") == 1);
    CHECK(log.contains("was already reported"));
}
