// The LLFree guest core (llfree.c), single-threaded: layout math, set-up, get/put
// of every order, exhaustion and invalid frees.
#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include "llfree_test_support.h"

namespace vmm::balloon::llfree::test {
namespace {

// 3 full trees, then a partial tree with 2 full children and one of 100 frames.
constexpr uint64_t kFrames = 3 * LLF_TREE_FRAMES + 2 * LLF_CHILD_FRAMES + 100;
constexpr uint64_t kChildren = 27;
constexpr uint64_t kFullChildren = 26;
constexpr uint64_t kFullPairs = 13;  // 4 per full tree + children 24/25

struct Allocation {
    uint64_t frame;
    unsigned order;
};

}  // namespace

TEST_CASE("LLFree layout sizes and offsets", "[llfree]") {
    CHECK(llf_children(kFrames) == kChildren);
    CHECK(llf_trees(kFrames) == 4);
    CHECK(llf_trees_bytes(kFrames) == 64);           // 4 x 2 bytes, rounded to 64
    CHECK(llf_lower_bytes(kFrames) == 4 * (8 * 64 + 64));
    CHECK(llf_bitfield_offset(5) == 5 * 64);
    CHECK(llf_child_entry_offset(kFrames, 0) == 32 * 64);  // after 32 bitfield slots
    CHECK(llf_child_entry_offset(kFrames, 9) == 32 * 64 + 64 + 2);
    CHECK(llf_tree_entry_offset(3) == 6);
    CHECK(llf_base_pfn(0x12345) == 0x12000);
    // One GiB: 32 KiB of bitfields, 4 KiB of child groups, 128 bytes of trees.
    constexpr uint64_t gib = 262144;
    CHECK(llf_trees_bytes(gib) == 128);
    CHECK(llf_lower_bytes(gib) == 32 * 1024 + 4 * 1024);
    // Entry encodings are the masks the protocol names.
    CHECK(llf_child_make(512, true, true) == 0xc200);
    CHECK(llf_tree_make(4096, true, 2) == 0xb000);
    uint16_t out = 0;
    CHECK_FALSE(llf_child_try_soft_reclaim(llf_child_make(511, false, false), &out));
    CHECK_FALSE(llf_tree_try_take(llf_tree_make(4096, true, 0), 1, &out));
    CHECK_FALSE(llf_tree_try_give(llf_tree_make(4000, false, 0), 512, &out));
}

TEST_CASE("LLFree init with a partial last child and tree", "[llfree]") {
    TestInstance inst(kFrames, false);
    CHECK(llf_free_frames(&inst.guest) == 0);
    CHECK(llf_check(&inst.guest) == 0);
    CHECK(llf_child_entry(&inst.guest, 26) == 0);
    for (uint64_t c = 27; c < 32; ++c) CHECK(llf_child_entry(&inst.guest, c) == LLF_CHILD_ABSENT);
    CHECK(llf_child_entry(&inst.guest, 1000) == LLF_CHILD_ABSENT);
    struct llf_result r {};
    CHECK(llf_get(&inst.guest, 0, 0, &r) == LLF_ENOMEM);

    REQUIRE(llf_init_free(&inst.guest, 0, kFrames) == LLF_OK);
    CHECK(llf_free_frames(&inst.guest) == kFrames);
    CHECK(llf_child_free(llf_child_entry(&inst.guest, 26)) == 100);
    CHECK(inst.tree_free(3) == 2 * 512 + 100);
    CHECK(inst.tree_free(0) == 4096);
    CHECK(llf_check(&inst.guest) == 0);
    // Freeing free frames again changes nothing; past the end is refused.
    CHECK(llf_init_free(&inst.guest, 10, 20) == LLF_OK);
    CHECK(llf_free_frames(&inst.guest) == kFrames);
    CHECK(llf_init_free(&inst.guest, kFrames - 1, 2) == LLF_EINVAL);
    CHECK(llf_check(&inst.guest) == 0);
}

TEST_CASE("LLFree init validates its arguments", "[llfree]") {
    alignas(64) static uint8_t trees[64];
    alignas(64) static uint8_t lower[576 + 64];
    struct llfree l {};
    std::vector<llf_local> local(LLF_MAX_CPUS);
    CHECK(llf_init(&l, 0, 4096, trees, lower, local.data()) == LLF_OK);
    CHECK(llf_init(&l, 512, 4096, trees, lower, local.data()) == LLF_EINVAL);  // base not 4 MiB
    CHECK(llf_init(&l, 0, 0, trees, lower, local.data()) == LLF_EINVAL);
    CHECK(llf_init(&l, 0, 4096, trees + 2, lower, local.data()) == LLF_EINVAL);
    CHECK(llf_init(&l, 0, 4096, trees, lower + 32, local.data()) == LLF_EINVAL);
    CHECK(llf_init(&l, 0, 4096, nullptr, lower, local.data()) == LLF_EINVAL);
}

TEST_CASE("LLFree get/put of every order is aligned and exact", "[llfree]") {
    TestInstance inst(kFrames);
    for (unsigned order = 0; order <= LLF_MAX_ORDER; ++order) {
        INFO("order " << order);
        const uint64_t n = 1ull << order;
        std::vector<Allocation> held;
        for (unsigned cpu = 0; cpu < 3; ++cpu) {
            struct llf_result r {};
            REQUIRE(llf_get(&inst.guest, cpu, order, &r) == LLF_OK);
            CHECK(r.frame % n == 0);
            CHECK(r.frame + n <= kFrames);
            CHECK(r.reclaimed_mask == 0);
            held.push_back({r.frame, order});
        }
        CHECK(llf_free_frames(&inst.guest) == kFrames - 3 * n);
        CHECK(llf_check(&inst.guest) == 0);
        if (order >= LLF_CHILD_ORDER) CHECK(llf_child_huge(llf_child_entry(&inst.guest, held[0].frame / 512)));
        for (auto& a : held) CHECK(llf_put(&inst.guest, 0, a.frame, a.order) == LLF_OK);
        CHECK(llf_free_frames(&inst.guest) == kFrames);
        CHECK(llf_check(&inst.guest) == 0);
    }
    struct llf_result r {};
    CHECK(llf_get(&inst.guest, 0, LLF_MAX_ORDER + 1, &r) == LLF_EINVAL);
}

TEST_CASE("LLFree hands out every frame once, then ENOMEM", "[llfree]") {
    TestInstance inst(kFrames);
    const std::pair<unsigned, uint64_t> cases[] = {
        {0, kFrames}, {3, kFrames / 8}, {7, kFullChildren * 4}, {9, kFullChildren}, {10, kFullPairs}};
    for (auto [order, expected] : cases) {
        INFO("order " << order);
        std::set<uint64_t> frames;
        struct llf_result r {};
        while (llf_get(&inst.guest, order % 5, order, &r) == LLF_OK) {
            CHECK(frames.insert(r.frame).second);
            REQUIRE(frames.size() <= expected);
        }
        CHECK(frames.size() == expected);
        CHECK(llf_free_frames(&inst.guest) == kFrames - expected * (1ull << order));
        CHECK(llf_check(&inst.guest) == 0);
        for (uint64_t f : frames) REQUIRE(llf_put(&inst.guest, 1, f, order) == LLF_OK);
        CHECK(llf_free_frames(&inst.guest) == kFrames);
        CHECK(llf_check(&inst.guest) == 0);
    }
}

TEST_CASE("LLFree fragmentation: free frames that fit no aligned run give ENOMEM", "[llfree]") {
    TestInstance inst(LLF_TREE_FRAMES);
    std::vector<uint64_t> frames;
    struct llf_result r {};
    while (llf_get(&inst.guest, 0, 0, &r) == LLF_OK) frames.push_back(r.frame);
    REQUIRE(frames.size() == LLF_TREE_FRAMES);
    for (uint64_t f : frames)
        if (f % 2 == 0) REQUIRE(llf_put(&inst.guest, 0, f, 0) == LLF_OK);
    CHECK(llf_free_frames(&inst.guest) == LLF_TREE_FRAMES / 2);
    CHECK(llf_get(&inst.guest, 0, 1, &r) == LLF_ENOMEM);  // every other frame free
    CHECK(llf_free_frames(&inst.guest) == LLF_TREE_FRAMES / 2);  // undone exactly
    CHECK(llf_check(&inst.guest) == 0);
    REQUIRE(llf_put(&inst.guest, 0, 101, 0) == LLF_OK);
    REQUIRE(llf_get(&inst.guest, 0, 1, &r) == LLF_OK);
    CHECK(r.frame == 100);
}

TEST_CASE("LLFree refuses invalid frees and leaves the state unchanged", "[llfree]") {
    TestInstance inst(kFrames);
    struct llf_result small {}, order2 {}, huge {}, pair {};
    REQUIRE(llf_get(&inst.guest, 0, 0, &small) == LLF_OK);
    REQUIRE(llf_get(&inst.guest, 0, 2, &order2) == LLF_OK);
    REQUIRE(llf_get(&inst.guest, 0, 9, &huge) == LLF_OK);
    REQUIRE(llf_get(&inst.guest, 0, 10, &pair) == LLF_OK);
    auto refused = [&](uint64_t frame, unsigned order) {
        INFO("frame " << frame << " order " << order);
        const uint64_t free_before = llf_free_frames(&inst.guest);
        CHECK(llf_put(&inst.guest, 0, frame, order) == LLF_EINVAL);
        CHECK(llf_free_frames(&inst.guest) == free_before);
        CHECK(llf_check(&inst.guest) == 0);
    };
    refused(small.frame + 1, 0);                // never allocated
    refused(order2.frame, 3);                   // larger than allocated
    refused(order2.frame + 1, 2);               // misaligned
    refused(huge.frame, 0);                     // order 0 inside a huge child
    refused(huge.frame + 64, 6);
    refused(huge.frame & ~1023ull, 10);         // first child of the pair not huge
    refused(small.frame & ~511ull, 9);          // child not huge
    refused(kFrames, 0);                        // out of range
    refused(26 * 512, 9);                       // the partial child
    refused(kFrames - 4, 3);                    // runs past the end
    refused(0, LLF_MAX_ORDER + 1);

    REQUIRE(llf_put(&inst.guest, 0, small.frame, 0) == LLF_OK);
    refused(small.frame, 0);                    // double free
    REQUIRE(llf_put(&inst.guest, 0, pair.frame + 512, 9) == LLF_OK);  // half of the pair
    CHECK(llf_put(&inst.guest, 0, pair.frame, 10) == LLF_EINVAL);
    REQUIRE(llf_put(&inst.guest, 0, pair.frame, 9) == LLF_OK);
    REQUIRE(llf_put(&inst.guest, 0, huge.frame, 9) == LLF_OK);
    refused(huge.frame, 9);                     // double free of a huge frame
    REQUIRE(llf_put(&inst.guest, 0, order2.frame, 2) == LLF_OK);
    CHECK(llf_free_frames(&inst.guest) == kFrames);
    CHECK(llf_check(&inst.guest) == 0);
}

TEST_CASE("LLFree check finds corrupted counters and bits", "[llfree]") {
    TestInstance inst(kFrames);
    REQUIRE(llf_check(&inst.guest) == 0);
    SECTION("child counter") {
        inst.poke_child(3, 511);
        CHECK(llf_check(&inst.guest) == 4);
    }
    SECTION("tree counter") {
        inst.poke_tree(2, 4095);
        CHECK(llf_check(&inst.guest) == kChildren + 2 + 1);
    }
    SECTION("bit past the end") {
        inst.raw[inst.layout.lower.raw + llf_bitfield_offset(26) + 63] = 0;
        CHECK(llf_check(&inst.guest) == 27);
    }
    SECTION("absent slot") {
        inst.poke_child(30, 0);
        CHECK(llf_check(&inst.guest) == 31);
    }
}

}  // namespace vmm::balloon::llfree::test
