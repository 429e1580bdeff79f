// LLFree under concurrency: guest threads allocate and free random orders
// lock-free while host threads soft/hard reclaim, return and install random
// children (serialized by one mutex, as the device's zone lock does).
//
// What is checked while it runs (any violation fails the test):
//   - a frame table: each allocated frame is claimed with a CAS from "free" to the
//     thread's id, so a frame handed out twice (or one the host holds) is caught;
//   - the host's own per-child `backed` flag (cleared by soft/hard reclaim, set by
//     install): a guest must install every child its allocation reports as
//     reclaimed, and then finds every child it uses backed;
//   - host bookkeeping agrees with the entries (hard reclaim says "was soft" exactly
//     when the host's flag says unbacked; soft reclaim finds no frame in use).
// At quiescence: llf_check() is clean and free + guest-held + host-held == total.
// This file is also built alone with -fsanitize=thread (unit_llfree_tsan).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "llfree_test_support.h"

namespace vmm::balloon::llfree::test {
namespace {

#ifdef LLFREE_TSAN_BUILD
constexpr int kGuestOps = 6000;  // TSan is ~10x slower
#else
constexpr int kGuestOps = 40000;
#endif
constexpr int kMinHostOps = 2000;
constexpr int kGuests = 4;
constexpr int kHosts = 2;
constexpr uint64_t kMaxHeldFrames = 1536;  // per guest thread
// Two full trees and a partial one (3 children and 77 frames): 20 children.
constexpr uint64_t kFrames = 2 * LLF_TREE_FRAMES + 3 * LLF_CHILD_FRAMES + 77;
constexpr int kUnowned = -1;
constexpr int kHostOwner = 1000;

struct Allocation {
    uint64_t frame;
    unsigned order;
};

struct Shared {
    Shared() : inst(kFrames), host(inst.host()), owner(kFrames), backed(llf_children(kFrames)),
               hard(llf_children(kFrames), false), held(kGuests) {
        for (auto& o : owner) o.store(kUnowned);
        for (auto& b : backed) b.store(true);
    }

    void fail(std::string message) {
        std::lock_guard guard(fail_lock);
        if (failures.fetch_add(1) == 0) first_failure = std::move(message);
    }
    uint64_t children_of(const Allocation& a) const { return a.order > 9 ? 2 : 1; }

    TestInstance inst;
    HostView host;
    std::mutex host_lock;                    // the device's zone lock
    std::vector<std::atomic<int>> owner;     // per frame
    std::vector<std::atomic<bool>> backed;   // per child: the host's view
    std::vector<bool> hard;                  // per child, under host_lock
    std::vector<std::vector<Allocation>> held;  // per guest, read after join
    std::atomic<int> guests_running{kGuests};   // the host threads run until 0

    std::mutex fail_lock;
    std::atomic<int> failures{0};
    std::string first_failure;
    std::atomic<uint64_t> gets{0}, enomem{0}, reclaimed_gets{0}, guest_installs{0};
    std::atomic<uint64_t> softs{0}, hards{0}, returns{0}, host_installs{0};
};

unsigned random_order(std::mt19937_64& rng) {
    unsigned p = static_cast<unsigned>(rng() % 100);
    if (p < 30) return 0;
    if (p < 55) return 1 + p % 3;  // 1..3
    if (p < 70) return 4 + p % 3;  // 4..6
    if (p < 80) return 7 + p % 2;  // 7..8
    if (p < 92) return 9;
    return 10;
}

// Under host_lock: what the device does for an install request, or on its own.
void install_locked(Shared& s, uint64_t child, const char* who) {
    if (s.hard[child]) return s.fail(fmt::format("{}: install of hard-reclaimed child {}", who, child));
    // Populate first, then clear the flag (a guest that sees it clear may use it).
    bool was_backed = s.backed[child].exchange(true);
    auto r = s.host.install(child);
    if (!r) return s.fail(fmt::format("{}: install {}: {}", who, child, r.error().message()));
    if (*r == Install::not_reclaimed && !was_backed)
        s.fail(fmt::format("{}: child {} unbacked but not reclaimed", who, child));
}

void guest_put(Shared& s, int tid, const Allocation& a) {
    const uint64_t n = 1ull << a.order;
    for (uint64_t c = 0; c < s.children_of(a); ++c)
        if (!s.backed[a.frame / 512 + c].load()) s.fail(fmt::format("held child {} lost its memory", a.frame / 512 + c));
    for (uint64_t f = a.frame; f < a.frame + n; ++f) {
        int expected = tid;
        if (!s.owner[f].compare_exchange_strong(expected, kUnowned))
            return s.fail(fmt::format("frame {} of guest {} owned by {}", f, tid, expected));
    }
    if (int rc = llf_put(&s.inst.guest, static_cast<unsigned>(tid), a.frame, a.order); rc != LLF_OK)
        s.fail(fmt::format("put {} order {}: {}", a.frame, a.order, rc));
}

void guest_loop(Shared& s, int tid) {
    std::mt19937_64 rng(0x11f4ee + static_cast<uint64_t>(tid));
    auto& held = s.held[static_cast<size_t>(tid)];
    uint64_t held_frames = 0;
    auto put_random = [&] {
        size_t i = rng() % held.size();
        Allocation a = held[i];
        held[i] = held.back();
        held.pop_back();
        held_frames -= 1ull << a.order;
        guest_put(s, tid, a);
    };
    for (int op = 0; op < kGuestOps && s.failures == 0; ++op) {
        if (!held.empty() && (held_frames >= kMaxHeldFrames || rng() % 100 >= 55)) {
            put_random();
            continue;
        }
        unsigned order = random_order(rng);
        struct llf_result r {};
        int rc = llf_get(&s.inst.guest, static_cast<unsigned>(tid), order, &r);
        if (rc == LLF_ENOMEM) {
            ++s.enomem;
            if (!held.empty()) put_random();
            continue;
        }
        const uint64_t n = 1ull << order;
        if (rc != LLF_OK || r.frame % n != 0 || r.frame + n > kFrames)
            return s.fail(fmt::format("get order {}: rc {} frame {}", order, rc, r.frame));
        ++s.gets;
        Allocation a{r.frame, order};
        if (r.reclaimed_mask != 0) {
            ++s.reclaimed_gets;
            std::lock_guard guard(s.host_lock);
            for (uint64_t c = 0; c < s.children_of(a); ++c) {
                if (!(r.reclaimed_mask & (1u << c))) continue;
                install_locked(s, a.frame / 512 + c, "guest");
                ++s.guest_installs;
            }
        }
        for (uint64_t c = 0; c < s.children_of(a); ++c)
            if (!s.backed[a.frame / 512 + c].load())
                s.fail(fmt::format("guest {} uses unbacked child {} (mask {})", tid, a.frame / 512 + c, r.reclaimed_mask));
        for (uint64_t f = a.frame; f < a.frame + n; ++f) {
            int expected = kUnowned;
            if (!s.owner[f].compare_exchange_strong(expected, tid))
                return s.fail(fmt::format("frame {} handed to guest {} but owned by {}", f, tid, expected));
        }
        held.push_back(a);
        held_frames += n;
    }
}

void guest_thread(Shared& s, int tid) {
    guest_loop(s, tid);
    --s.guests_running;
}

// Under host_lock.
void host_op(Shared& s, std::mt19937_64& rng) {
    const uint64_t children = llf_children(kFrames);
    const uint64_t child = rng() % children;
    const uint64_t first = child * 512, last = std::min(first + 512, kFrames);
    // Host installs are rare so that most reclaimed children reach a guest first.
    const unsigned pick = static_cast<unsigned>(rng() % 64);
    switch (pick < 24 ? 0 : pick < 40 ? 1 : pick < 63 ? 2 : 3) {
    case 0: {
        if (s.hard[child]) return;
        auto r = s.host.soft_reclaim(child);
        if (!r) return s.fail("soft reclaim: " + r.error().message());
        if (!*r) return;
        s.backed[child].store(false);
        ++s.softs;
        for (uint64_t f = first; f < last; ++f)
            if (s.owner[f].load() != kUnowned) return s.fail(fmt::format("soft reclaim of used frame {}", f));
        return;
    }
    case 1: {
        if (s.hard[child]) return;
        auto r = s.host.hard_reclaim(child);
        if (!r) return s.fail("hard reclaim: " + r.error().message());
        if (*r == HardReclaim::refused) return;
        if ((*r == HardReclaim::taken_was_soft) == s.backed[child].load())
            s.fail(fmt::format("hard reclaim of child {}: entry and host disagree on soft", child));
        s.backed[child].store(false);
        s.hard[child] = true;
        ++s.hards;
        for (uint64_t f = first; f < last; ++f) {
            int expected = kUnowned;
            if (!s.owner[f].compare_exchange_strong(expected, kHostOwner))
                return s.fail(fmt::format("hard reclaim of frame {} owned by {}", f, expected));
        }
        return;
    }
    case 2: {
        uint64_t c = child;
        for (uint64_t i = 0; i < children && !s.hard[c]; ++i) c = (c + 1) % children;
        if (!s.hard[c]) return;
        for (uint64_t f = c * 512; f < c * 512 + 512; ++f) s.owner[f].store(kUnowned);
        auto r = s.host.return_child(c);
        if (!r || !*r) return s.fail(fmt::format("return of child {} failed", c));
        s.hard[c] = false;
        ++s.returns;
        return;
    }
    default:
        if (s.hard[child]) return;
        install_locked(s, child, "host");
        ++s.host_installs;
    }
}

void host_thread(Shared& s, int id) {
    std::mt19937_64 rng(0x4057 + static_cast<uint64_t>(id));
    // Until the guests are done, and at least kMinHostOps on a loaded machine.
    for (int op = 0; (s.guests_running > 0 || op < kMinHostOps) && s.failures == 0; ++op) {
        {
            std::lock_guard guard(s.host_lock);
            host_op(s, rng);
        }
    }
}

}  // namespace

TEST_CASE("LLFree guests and host race without losing or sharing frames", "[llfree][concurrency]") {
    auto s = std::make_unique<Shared>();
    std::vector<std::thread> threads;
    for (int g = 0; g < kGuests; ++g) threads.emplace_back(guest_thread, std::ref(*s), g);
    for (int h = 0; h < kHosts; ++h) threads.emplace_back(host_thread, std::ref(*s), h);
    for (auto& t : threads) t.join();

    INFO(s->first_failure);
    REQUIRE(s->failures == 0);
    INFO("gets " << s->gets << " enomem " << s->enomem << " reclaimed gets " << s->reclaimed_gets
                 << " soft " << s->softs << " hard " << s->hards << " returns " << s->returns);
    // The run must have exercised every path the checks are about.
    CHECK(s->gets > kGuestOps);
    CHECK(s->reclaimed_gets > 0);
    CHECK(s->softs > 0);
    CHECK(s->hards > 0);
    CHECK(s->returns > 0);
    CHECK(s->host_installs > 0);

    // Quiescence: counters match bits, and every frame is accounted for exactly once.
    struct llfree* guest = &s->inst.guest;
    CHECK(llf_check(guest) == 0);
    uint64_t guest_frames = 0, host_frames = 0;
    for (auto& held : s->held)
        for (auto& a : held) guest_frames += 1ull << a.order;
    for (uint64_t c = 0; c < s->hard.size(); ++c) {
        if (s->hard[c]) host_frames += 512;
        else CHECK(llf_child_reclaimed(llf_child_entry(guest, c)) == !s->backed[c].load());
    }
    uint64_t owned = 0;
    for (auto& o : s->owner) owned += o.load() != kUnowned;
    CHECK(owned == guest_frames + host_frames);
    CHECK(llf_free_frames(guest) + guest_frames + host_frames == kFrames);

    // Everything back: the instance is whole again.
    for (int g = 0; g < kGuests; ++g)
        for (auto& a : s->held[static_cast<size_t>(g)]) guest_put(*s, g, a);
    for (uint64_t c = 0; c < s->hard.size(); ++c)
        if (s->hard[c]) CHECK(*s->host.return_child(c));
    REQUIRE(s->failures == 0);
    CHECK(llf_free_frames(guest) == kFrames);
    CHECK(llf_check(guest) == 0);
}

}  // namespace vmm::balloon::llfree::test
