#include <catch2/catch.hpp>

#include <poll.h>

#include <chrono>
#include <cstring>

#include "balloon_test_support.h"

using namespace vmm::balloon;
using namespace vmm::balloon::test;
namespace dv = vmm::devices::virtio;

namespace {

constexpr uint64_t kStatsFeatures = dv::kFeatureVersion1 | kFeatureStatsVq;
constexpr uint16_t kStatsQ = 2;

// Packed {le16 tag, le64 val} entries.
std::vector<std::byte> stats_buffer(std::initializer_list<std::pair<uint16_t, uint64_t>> e) {
    std::vector<std::byte> buf;
    for (auto [tag, val] : e) {
        size_t at = buf.size();
        buf.resize(at + kStatEntrySize);
        std::memcpy(buf.data() + at, &tag, sizeof(tag));
        std::memcpy(buf.data() + at + 2, &val, sizeof(val));
    }
    return buf;
}

uint16_t post_stats(Harness& h, const std::vector<std::byte>& buf, bool notify = true) {
    uint64_t addr = h.put(buf);
    uint16_t head = h.rings[kStatsQ].add_chain({{addr, static_cast<uint32_t>(buf.size()), false}});
    h.rings[kStatsQ].publish();
    if (notify) h.dev->process_queue(kStatsQ);
    return head;
}

bool wait_readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1;
}

}  // namespace

TEST_CASE("stats buffer is parsed, held, and returned when the timer fires", "[balloon]") {
    Harness h(BalloonOptions{0, false, false, 1});
    h.dev->set_stats_period_for_test(std::chrono::milliseconds(20));
    REQUIRE(h.activate(kStatsFeatures).has_value());
    CHECK(h.dev->stats_negotiated());
    CHECK_FALSE(h.dev->stats().has_value());

    uint16_t first = post_stats(h, stats_buffer({{kStatFreeMemory, 1000},
                                                 {kStatTotalMemory, 2000},
                                                 {99, 7},
                                                 {kStatDirectReclaim, 5}}));
    auto s = h.dev->stats();
    REQUIRE(s.has_value());
    CHECK(s->free_memory == 1000u);
    CHECK(s->total_memory == 2000u);
    CHECK(s->direct_reclaim == 5u);
    CHECK_FALSE(s->swap_in.has_value());
    CHECK(s->updated_at.time_since_epoch().count() != 0);
    CHECK(h.rings[kStatsQ].used_idx() == 0);  // held until the timer asks

    // A second buffer while one is held: returned at once, not parsed.
    uint16_t second = post_stats(h, stats_buffer({{kStatFreeMemory, 1}}));
    CHECK(h.rings[kStatsQ].used_idx() == 1);
    CHECK(h.rings[kStatsQ].used_elem(0).id == second);
    CHECK(h.dev->stats()->free_memory == 1000u);
    CHECK(h.irq->used[kStatsQ] == 1);

    auto fds = h.dev->backend_fds();
    REQUIRE(fds.size() == 1);
    h.dev->process_backend(fds[0] + 1000, 1);  // not our fd: ignored
    CHECK(h.rings[kStatsQ].used_idx() == 1);
    REQUIRE(wait_readable(fds[0], 2000));
    h.dev->process_backend(fds[0], POLLIN);
    CHECK(h.rings[kStatsQ].used_idx() == 2);
    CHECK(h.rings[kStatsQ].used_elem(1).id == first);
    CHECK(h.rings[kStatsQ].used_elem(1).len == 0);
    CHECK(h.irq->used[kStatsQ] == 2);

    // Nothing held any more: the next tick returns nothing.
    REQUIRE(wait_readable(fds[0], 2000));
    h.dev->process_backend(fds[0], POLLIN);
    CHECK(h.rings[kStatsQ].used_idx() == 2);

    // The guest refills: new values replace the snapshot.
    post_stats(h, stats_buffer({{kStatSwapIn, 3}}));
    s = h.dev->stats();
    REQUIRE(s.has_value());
    CHECK(s->swap_in == 3u);
    CHECK_FALSE(s->free_memory.has_value());
    CHECK(h.rings[kStatsQ].used_idx() == 2);
    CHECK(h.irq->needs_reset == 0);
}

TEST_CASE("a stats buffer primed before DRIVER_OK is taken at activation", "[balloon]") {
    Harness h(BalloonOptions{0, false, false, 1});
    // Lay out the rings first, post the buffer, then activate with those rings.
    dv::ActivateContext ctx;
    ctx.memory = &h.mem;
    ctx.acked_features = kStatsFeatures;
    ctx.interrupt = h.irq;
    for (int i = 0; i < 3; ++i) h.rings.emplace_back(h.mem, kRingSize, kRingBases[i]);
    uint64_t addr = h.put(stats_buffer({{kStatAvailableMemory, 4242}}));
    h.rings[kStatsQ].add_chain({{addr, kStatEntrySize, false}});
    h.rings[kStatsQ].publish();
    for (auto& r : h.rings) ctx.queues.push_back(r.make_queue(kBalloonQueueSize));
    REQUIRE(h.dev->activate(std::move(ctx)).has_value());
    REQUIRE(h.dev->stats().has_value());
    CHECK(h.dev->stats()->available_memory == 4242u);
    CHECK(h.rings[kStatsQ].used_idx() == 0);
    CHECK(h.irq->used.empty());
}

TEST_CASE("oversized stats buffers are read only up to 64 entries", "[balloon]") {
    Harness h(BalloonOptions{0, false, false, 1});
    REQUIRE(h.activate(kStatsFeatures).has_value());
    std::vector<std::byte> buf;
    for (int i = 0; i < 64; ++i) {
        auto one = stats_buffer({{kStatMinorFaults, static_cast<uint64_t>(i)}});
        buf.insert(buf.end(), one.begin(), one.end());
    }
    auto extra = stats_buffer({{kStatMajorFaults, 1}});
    buf.insert(buf.end(), extra.begin(), extra.end());
    post_stats(h, buf);
    REQUIRE(h.dev->stats().has_value());
    CHECK(h.dev->stats()->minor_faults == 63u);
    CHECK_FALSE(h.dev->stats()->major_faults.has_value());
}

TEST_CASE("stats timer and interval control", "[balloon]") {
    Harness off(BalloonOptions{});
    CHECK(off.dev->backend_fds().empty());
    CHECK_FALSE(off.dev->set_stats_interval(5).has_value());

    Harness h(BalloonOptions{0, false, false, 1});
    CHECK_FALSE(h.dev->set_stats_interval(0).has_value());
    CHECK(h.dev->set_stats_interval(3).has_value());
    // Offered but not acked: no stats queue, timer never armed.
    REQUIRE(h.activate(dv::kFeatureVersion1).has_value());
    CHECK_FALSE(h.dev->stats_negotiated());
    CHECK_FALSE(wait_readable(h.dev->backend_fds()[0], 50));
}

TEST_CASE("reset stops the stats timer and drops the held buffer", "[balloon]") {
    Harness h(BalloonOptions{0, false, false, 1});
    h.dev->set_stats_period_for_test(std::chrono::milliseconds(20));
    REQUIRE(h.activate(kStatsFeatures).has_value());
    post_stats(h, stats_buffer({{kStatFreeMemory, 1}}));
    h.dev->write_config(4, std::as_bytes(std::span<const uint32_t>(std::vector<uint32_t>{9})));
    CHECK(h.dev->actual_pages() == 9);
    h.dev->reset();
    CHECK(h.dev->actual_pages() == 0);
    CHECK_FALSE(h.dev->stats_negotiated());
    int fd = h.dev->backend_fds()[0];
    CHECK_FALSE(wait_readable(fd, 100));
    h.dev->process_backend(fd, POLLIN);
    CHECK(h.rings[kStatsQ].used_idx() == 0);
    h.dev->process_queue(0);  // inactive: a no-op
}

TEST_CASE("a broken ring asks for a reset and stops processing", "[balloon]") {
    Harness h(BalloonOptions{});
    REQUIRE(h.activate(dv::kFeatureVersion1).has_value());
    h.rings[0].set_avail_idx(1000);  // far more than the 16 entries of the ring
    h.dev->process_queue(0);
    CHECK(h.irq->needs_reset == 1);
    h.dev->process_queue(0);
    h.dev->process_queue(1);
    CHECK(h.irq->needs_reset == 1);
    CHECK(h.rings[0].used_idx() == 0);
    // A reset and a fresh activation bring the device back.
    h.dev->reset();
    h.rings.clear();
    REQUIRE(h.activate(dv::kFeatureVersion1).has_value());
    h.post_pfns(0, {0x900});
    CHECK(h.dev->counter_values().pages_inflated == 1);
}
