#include <catch2/catch.hpp>

#include <array>
#include <cstring>

#include "balloon_test_support.h"

using namespace vmm::balloon;
using namespace vmm::balloon::test;
namespace dv = vmm::devices::virtio;

namespace {

constexpr uint64_t kV1 = dv::kFeatureVersion1;
constexpr uint32_t kPagePfn = 0x800;  // 8 MiB: pages the tests fill and inflate

uint32_t read_config32(VirtioBalloon& dev, uint64_t offset) {
    std::array<std::byte, 4> bytes{};
    dev.read_config(offset, bytes);
    uint32_t v = 0;
    std::memcpy(&v, bytes.data(), sizeof(v));
    return v;
}

void write_config32(VirtioBalloon& dev, uint64_t offset, uint32_t v) {
    std::array<std::byte, 4> bytes{};
    std::memcpy(bytes.data(), &v, sizeof(v));
    dev.write_config(offset, bytes);
}

}  // namespace

TEST_CASE("balloon offers features and queues from its options", "[balloon]") {
    for (bool stats : {false, true}) {
        for (bool reporting : {false, true}) {
            BalloonOptions o{0, true, reporting, stats ? 5u : 0u};
            Harness h(o);
            uint64_t f = h.dev->device_features();
            CHECK((f & kV1) != 0);
            CHECK((f & kFeatureDeflateOnOom) != 0);
            CHECK(((f & kFeatureStatsVq) != 0) == stats);
            CHECK(((f & kFeatureFreePageReporting) != 0) == reporting);
            CHECK((f & (1ull << 0)) == 0);  // no MUST_TELL_HOST
            CHECK((f & (1ull << 3)) == 0);  // no free page hinting
            CHECK(h.dev->queue_max_sizes().size() == 2u + stats + reporting);
            CHECK(h.dev->backend_fds().size() == (stats ? 1u : 0u));
            CHECK(h.dev->device_type() == dv::kIdBalloon);
        }
    }
    Harness plain(BalloonOptions{});
    CHECK((plain.dev->device_features() & kFeatureDeflateOnOom) == 0);
}

TEST_CASE("queue roles follow the negotiated features", "[balloon]") {
    using R = QueueRole;
    CHECK(queue_roles(kV1) == std::vector<R>{R::inflate, R::deflate});
    CHECK(queue_roles(kV1 | kFeatureStatsVq) == std::vector<R>{R::inflate, R::deflate, R::stats});
    CHECK(queue_roles(kV1 | kFeatureFreePageReporting) ==
          std::vector<R>{R::inflate, R::deflate, R::reporting});
    CHECK(queue_roles(kV1 | kFeatureStatsVq | kFeatureFreePageReporting | kFeatureDeflateOnOom) ==
          std::vector<R>{R::inflate, R::deflate, R::stats, R::reporting});
}

TEST_CASE("the device maps queue indices from the acked features", "[balloon]") {
    // Everything offered; the driver acks each combination. The transport passes as
    // many queues as were offered.
    BalloonOptions all{0, false, true, 1};
    for (bool stats : {false, true}) {
        for (bool reporting : {false, true}) {
            Harness h(all);
            uint64_t acked = kV1 | (stats ? kFeatureStatsVq : 0) |
                             (reporting ? kFeatureFreePageReporting : 0);
            size_t used_queues = 2u + stats + reporting;
            REQUIRE(h.activate(acked, 4 - used_queues).has_value());
            INFO("stats " << stats << " reporting " << reporting);
            h.fill_page(kPagePfn, 0x5a);
            if (reporting) {
                uint16_t q = stats ? 3 : 2;
                h.rings[q].add_chain({{uint64_t{kPagePfn} << 12, 4096, true}});
                h.rings[q].publish();
                h.dev->process_queue(q);
                CHECK(h.dev->counter_values().pages_reported == 1);
                CHECK(h.rings[q].used_idx() == 1);
                CHECK(h.page_is(kPagePfn, 0));
            }
            if (stats) {
                std::vector<uint8_t> entry = {4, 0, 9, 0, 0, 0, 0, 0, 0, 0};  // free_memory 9
                uint64_t addr = h.put(entry);
                h.rings[2].add_chain({{addr, 10, false}});
                h.rings[2].publish();
                h.dev->process_queue(2);
                REQUIRE(h.dev->stats().has_value());
                CHECK(h.dev->stats()->free_memory == 9u);
                CHECK(h.rings[2].used_idx() == 0);  // held, not returned
            }
            // Nothing on any queue moved the other counters.
            CHECK(h.dev->counter_values().pages_inflated == 0);
            if (!stats) CHECK_FALSE(h.dev->stats().has_value());
            if (!reporting) CHECK(h.page_is(kPagePfn, 0x5a));
            CHECK(h.irq->needs_reset == 0);
        }
    }
}

TEST_CASE("activation fails without enough queues", "[balloon]") {
    Harness h(BalloonOptions{0, false, true, 0});
    vmm::devices::virtio::ActivateContext ctx;
    ctx.memory = &h.mem;
    ctx.acked_features = kV1 | kFeatureFreePageReporting;
    ctx.interrupt = h.irq;
    h.rings.emplace_back(h.mem, kRingSize, kRingBases[0]);
    ctx.queues.push_back(h.rings[0].make_queue());
    ctx.queues.push_back(h.rings[0].make_queue());
    auto r = h.dev->activate(std::move(ctx));
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().message(), Catch::Contains("need 3 queues"));
}

TEST_CASE("inflate discards the pages and zeroes them", "[balloon]") {
    Harness h(BalloonOptions{});
    REQUIRE(h.activate(kV1).has_value());
    for (uint32_t p = kPagePfn; p < kPagePfn + 6; ++p) h.fill_page(p, 0xab);

    // Unsorted, with a duplicate: one contiguous run of 4 pages.
    uint16_t head = h.post_pfns(0, {kPagePfn + 1, kPagePfn, kPagePfn + 3, kPagePfn + 2, kPagePfn});
    for (uint32_t p = kPagePfn; p < kPagePfn + 4; ++p) CHECK(h.page_is(p, 0));
    CHECK(h.page_is(kPagePfn + 4, 0xab));
    CHECK(h.page_is(kPagePfn + 5, 0xab));

    BalloonCounters c = h.dev->counter_values();
    CHECK(c.pages_inflated == 4);
    CHECK(c.inflate_discard_calls == 1);
    CHECK(c.bad_pfns == 0);
    CHECK(h.rings[0].used_idx() == 1);
    CHECK(h.rings[0].used_elem(0).id == head);
    CHECK(h.irq->used[0] == 1);
    auto map = h.dev->counters();
    CHECK(map.at("pages_inflated") == 4);
    CHECK(map.at("inflate_discard_calls") == 1);
}

TEST_CASE("inflate skips out-of-RAM pfns and keeps the valid ones", "[balloon]") {
    Harness h(BalloonOptions{});
    REQUIRE(h.activate(kV1).has_value());
    for (uint32_t p = kPagePfn; p < kPagePfn + 3; ++p) h.fill_page(p, 0xcd);
    // 16 MiB of RAM is pfns 0..0xfff.
    h.post_pfns(0, {kPagePfn, 0x1000, UINT32_MAX, kPagePfn + 2});
    BalloonCounters c = h.dev->counter_values();
    CHECK(c.bad_pfns == 2);
    CHECK(c.pages_inflated == 2);
    CHECK(c.inflate_discard_calls == 2);
    CHECK(h.page_is(kPagePfn, 0));
    CHECK(h.page_is(kPagePfn + 1, 0xcd));
    CHECK(h.page_is(kPagePfn + 2, 0));
    CHECK(h.rings[0].used_idx() == 1);
    CHECK(h.irq->needs_reset == 0);
}

TEST_CASE("inflate skips malformed descriptors", "[balloon]") {
    Harness h(BalloonOptions{});
    REQUIRE(h.activate(kV1).has_value());
    for (uint32_t p = kPagePfn; p < kPagePfn + 4; ++p) h.fill_page(p, 0xee);
    std::vector<uint32_t> one = {kPagePfn};
    std::vector<uint32_t> two = {kPagePfn + 1};
    std::vector<uint32_t> too_many(kMaxPfnsPerDescriptor + 1, kPagePfn + 2);
    std::vector<uint32_t> good = {kPagePfn + 3};
    uint64_t a1 = h.put(one), a2 = h.put(two), a3 = h.put(too_many), a4 = h.put(good);
    // (The ring requires device-writable descriptors after the readable ones.)
    h.rings[0].add_chain({{a2, 3, false},         // not a multiple of 4
                          {a3, static_cast<uint32_t>(too_many.size() * 4), false},
                          {a4, 4, false},
                          {a1, 4, true}});        // device-writable
    h.rings[0].publish();
    h.dev->process_queue(0);
    CHECK(h.page_is(kPagePfn, 0xee));
    CHECK(h.page_is(kPagePfn + 1, 0xee));
    CHECK(h.page_is(kPagePfn + 2, 0xee));
    CHECK(h.page_is(kPagePfn + 3, 0));
    CHECK(h.dev->counter_values().pages_inflated == 1);
    CHECK(h.rings[0].used_idx() == 1);
}

TEST_CASE("a full descriptor of 256 pfns is accepted", "[balloon]") {
    Harness h(BalloonOptions{});
    REQUIRE(h.activate(kV1).has_value());
    std::vector<uint32_t> pfns;
    for (uint32_t i = 0; i < kMaxPfnsPerDescriptor; i += 2) pfns.push_back(kPagePfn + i);
    h.post_pfns(0, pfns);
    CHECK(h.dev->counter_values().pages_inflated == kMaxPfnsPerDescriptor / 2);
    CHECK(h.dev->counter_values().inflate_discard_calls == kMaxPfnsPerDescriptor / 2);
}

TEST_CASE("deflate only counts the pages", "[balloon]") {
    Harness h(BalloonOptions{});
    REQUIRE(h.activate(kV1).has_value());
    h.fill_page(kPagePfn, 0x11);
    uint16_t head = h.post_pfns(1, {kPagePfn, kPagePfn + 1, kPagePfn + 7});
    BalloonCounters c = h.dev->counter_values();
    CHECK(c.pages_deflated == 3);
    CHECK(c.pages_inflated == 0);
    CHECK(h.page_is(kPagePfn, 0x11));
    CHECK(h.rings[1].used_idx() == 1);
    CHECK(h.rings[1].used_elem(0).id == head);
    CHECK(h.irq->used[1] == 1);
}

TEST_CASE("config: actual is guest-writable, num_pages is not", "[balloon]") {
    Harness h(BalloonOptions{4 << 20, false, false, 0});
    CHECK(read_config32(*h.dev, 0) == 1024);
    CHECK(read_config32(*h.dev, 4) == 0);

    write_config32(*h.dev, 4, 77);
    CHECK(h.dev->actual_pages() == 77);
    CHECK(read_config32(*h.dev, 4) == 77);

    write_config32(*h.dev, 0, 5);  // num_pages: ignored
    CHECK(read_config32(*h.dev, 0) == 1024);
    CHECK(h.dev->target_pages() == 1024);

    std::array<std::byte, 2> half{std::byte{1}, std::byte{2}};
    h.dev->write_config(4, half);  // partial write of actual: ignored
    h.dev->write_config(6, half);
    CHECK(h.dev->actual_pages() == 77);
    std::array<std::byte, 8> both{};
    h.dev->write_config(0, both);  // covers num_pages too: ignored
    CHECK(h.dev->target_pages() == 1024);
    CHECK(h.dev->actual_pages() == 77);
    write_config32(*h.dev, 8, 1);  // past the end
    write_config32(*h.dev, UINT64_MAX - 1, 1);
    CHECK(h.dev->actual_pages() == 77);

    // Reads past the end give zeroes; a straddling read gives the tail then zeroes.
    CHECK(read_config32(*h.dev, 8) == 0);
    CHECK(read_config32(*h.dev, UINT64_MAX - 2) == 0);
    CHECK(read_config32(*h.dev, 6) == 0);
    std::array<std::byte, 4> straddle{};
    h.dev->read_config(2, straddle);
    uint32_t v = 0;
    std::memcpy(&v, straddle.data(), 4);
    CHECK(v == (1024u >> 16 | (77u << 16)));
}

TEST_CASE("set_target validates and raises a config change when active", "[balloon]") {
    Harness h(BalloonOptions{});
    REQUIRE(h.dev->set_target(8 << 20).has_value());
    CHECK(h.dev->target_pages() == 2048);
    CHECK(h.irq->config_changes == 0);  // not active: nobody to tell

    REQUIRE(h.activate(kV1).has_value());
    REQUIRE(h.dev->set_target(kGuestRam).has_value());
    CHECK(h.dev->target_pages() == kGuestRam / 4096);
    CHECK(read_config32(*h.dev, 0) == kGuestRam / 4096);
    CHECK(h.irq->config_changes == 1);

    auto too_big = h.dev->set_target(kGuestRam + 4096);
    REQUIRE_FALSE(too_big.has_value());
    CHECK_THAT(too_big.error().message(), Catch::Contains("exceeds guest RAM"));
    auto unaligned = h.dev->set_target(4097);
    REQUIRE_FALSE(unaligned.has_value());
    CHECK_THAT(unaligned.error().message(), Catch::Contains("4 KiB"));
    CHECK(h.dev->target_pages() == kGuestRam / 4096);
    CHECK(h.irq->config_changes == 1);

    h.dev->reset();
    REQUIRE(h.dev->set_target(0).has_value());
    CHECK(h.irq->config_changes == 1);
}

TEST_CASE("create rejects an initial target larger than RAM", "[balloon]") {
    auto r = VirtioBalloon::create(BalloonOptions{2 << 20, false, false, 0}, 1 << 20);
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().message(), Catch::Contains("initial target"));
}

TEST_CASE("free page reporting discards the reported ranges", "[balloon]") {
    Harness h(BalloonOptions{0, false, true, 0});
    REQUIRE(h.activate(kV1 | kFeatureFreePageReporting).has_value());
    for (uint32_t p = kPagePfn; p < kPagePfn + 8; ++p) h.fill_page(p, 0x77);
    uint64_t base = uint64_t{kPagePfn} << 12;
    h.rings[2].add_chain({{base + 6 * 4096, 4096, false},  // read-only works too
                          {base, 2 * 4096, true},
                          {base + 3 * 4096 + 1, 4096, true},  // unaligned address
                          {base + 5 * 4096, 100, true}});     // unaligned length
    h.rings[2].publish();
    h.dev->process_queue(2);
    CHECK(h.page_is(kPagePfn, 0));
    CHECK(h.page_is(kPagePfn + 1, 0));
    CHECK(h.page_is(kPagePfn + 2, 0x77));
    CHECK(h.page_is(kPagePfn + 3, 0x77));
    CHECK(h.page_is(kPagePfn + 5, 0x77));
    CHECK(h.page_is(kPagePfn + 6, 0));
    CHECK(h.dev->counter_values().pages_reported == 3);
    CHECK(h.rings[2].used_idx() == 1);
    CHECK(h.irq->used[2] == 1);
}
