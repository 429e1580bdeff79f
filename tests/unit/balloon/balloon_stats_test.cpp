#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

#include "balloon/balloon_stats.h"

using namespace vmm::balloon;

namespace {

void append(std::vector<std::byte>& buf, uint16_t tag, uint64_t val) {
    size_t at = buf.size();
    buf.resize(at + kStatEntrySize);
    std::memcpy(buf.data() + at, &tag, sizeof(tag));
    std::memcpy(buf.data() + at + 2, &val, sizeof(val));
}

}  // namespace

TEST_CASE("stats entries land in the named fields", "[balloon]") {
    std::vector<std::byte> buf;
    for (uint16_t tag = 0; tag < kStatCount; ++tag) append(buf, tag, 1000 + tag);
    BalloonStats s = parse_stats(buf);
    CHECK(s.swap_in == 1000u);
    CHECK(s.swap_out == 1001u);
    CHECK(s.major_faults == 1002u);
    CHECK(s.minor_faults == 1003u);
    CHECK(s.free_memory == 1004u);
    CHECK(s.total_memory == 1005u);
    CHECK(s.available_memory == 1006u);
    CHECK(s.disk_caches == 1007u);
    CHECK(s.hugetlb_allocations == 1008u);
    CHECK(s.hugetlb_failures == 1009u);
    CHECK(s.oom_kill == 1010u);
    CHECK(s.alloc_stall == 1011u);
    CHECK(s.async_scan == 1012u);
    CHECK(s.direct_scan == 1013u);
    CHECK(s.async_reclaim == 1014u);
    CHECK(s.direct_reclaim == 1015u);
    auto present = s.present();
    REQUIRE(present.size() == kStatCount);
    CHECK(present[4].first == "free_memory");
    CHECK(present[4].second == 1004u);
    CHECK(present[15].first == "direct_reclaim");
}

TEST_CASE("stats: unknown tags are ignored and absent fields stay empty", "[balloon]") {
    std::vector<std::byte> buf;
    append(buf, kStatFreeMemory, 123);
    append(buf, 16, 5);
    append(buf, 0xffff, 6);
    append(buf, kStatTotalMemory, UINT64_MAX);
    BalloonStats s = parse_stats(buf);
    CHECK(s.free_memory == 123u);
    CHECK(s.total_memory == UINT64_MAX);
    CHECK_FALSE(s.swap_in.has_value());
    CHECK(s.present().size() == 2);
}

TEST_CASE("stats: a trailing partial entry is ignored", "[balloon]") {
    std::vector<std::byte> buf;
    append(buf, kStatMajorFaults, 9);
    append(buf, kStatMinorFaults, 10);
    buf.resize(buf.size() - 1);  // cut the last value short
    BalloonStats s = parse_stats(buf);
    CHECK(s.major_faults == 9u);
    CHECK_FALSE(s.minor_faults.has_value());
    CHECK(parse_stats({}).present().empty());
}

TEST_CASE("stats: at most 64 entries are parsed", "[balloon]") {
    std::vector<std::byte> buf;
    for (uint32_t i = 0; i < kMaxStatEntries; ++i) append(buf, kStatSwapIn, i);
    append(buf, kStatSwapOut, 77);  // entry 65: beyond the bound
    BalloonStats s = parse_stats(buf);
    CHECK(s.swap_in == uint64_t{kMaxStatEntries - 1});  // the last of a repeated tag wins
    CHECK_FALSE(s.swap_out.has_value());
}
