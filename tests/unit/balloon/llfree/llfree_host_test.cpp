// HostView (the HyperAlloc host operations) against the guest core, one thread:
// soft/hard reclaim, return, install, the reclaimed flag in allocations, and
// hostile (corrupted) entries.
#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include "llfree_test_support.h"

namespace vmm::balloon::llfree::test {
namespace {

uint16_t entry(const HostView& host, uint64_t child) {
    auto e = host.child_entry(child);
    REQUIRE(e.has_value());
    return *e;
}

// Takes every child of a one-tree instance as an order-9 allocation.
void take_all_children(TestInstance& inst) {
    for (unsigned i = 0; i < LLF_TREE_CHILDREN; ++i) {
        struct llf_result r {};
        REQUIRE(llf_get(&inst.guest, 0, 9, &r) == LLF_OK);
    }
    REQUIRE(llf_free_frames(&inst.guest) == 0);
}

}  // namespace

TEST_CASE("LLFree soft reclaim takes only entirely free children", "[llfree]") {
    TestInstance inst(2 * LLF_TREE_FRAMES);
    HostView host = inst.host();
    struct llf_result r {};
    REQUIRE(llf_get(&inst.guest, 0, 0, &r) == LLF_OK);
    const uint64_t used = r.frame / 512;

    CHECK(*host.soft_reclaim(used) == false);
    CHECK(*host.soft_reclaim(used + 1) == true);
    CHECK(entry(host, used + 1) == llf_child_make(512, false, true));
    CHECK(*host.is_reclaimed(used + 1));
    CHECK(llf_is_reclaimed(&inst.guest, (used + 1) * 512 + 7));
    CHECK(*host.soft_reclaim(used + 1) == false);  // already
    CHECK(inst.tree_free(0) == 4095);              // still free for the guest
    CHECK(llf_check(&inst.guest) == 0);

    SECTION("a reserved tree is left alone") {
        inst.poke_tree(1, llf_tree_make(4096, true, 0));
        CHECK(*host.soft_reclaim(8) == false);
        CHECK(*host.hard_reclaim(8) == HardReclaim::refused);
        CHECK(entry(host, 8) == llf_child_make(512, false, false));
        CHECK(inst.tree_free(1) == 4096);
    }
    SECTION("a tree with fewer than 512 free is left alone") {
        for (int i = 0; i < 7; ++i) REQUIRE(llf_get(&inst.guest, 1, 9, &r) == LLF_OK);
        CHECK(inst.tree_free(0) == 511);
        // Child `used` becomes entirely free; the tree counter is then made short by
        // one, as it is while the tree update of a put is still in flight.
        REQUIRE(llf_put(&inst.guest, 0, used * 512, 0) == LLF_OK);
        REQUIRE(entry(host, used) == llf_child_make(512, false, false));
        inst.poke_tree(0, 511);
        CHECK(*host.soft_reclaim(used) == false);
        CHECK(*host.hard_reclaim(used) == HardReclaim::refused);
        CHECK(inst.tree_free(0) == 511);
    }
}

TEST_CASE("LLFree hard reclaim, return and install", "[llfree]") {
    TestInstance inst(LLF_TREE_FRAMES);
    HostView host = inst.host();

    CHECK(*host.hard_reclaim(3) == HardReclaim::taken);
    CHECK(entry(host, 3) == llf_child_make(0, true, true));
    CHECK(inst.tree_free(0) == 4096 - 512);
    CHECK(llf_check(&inst.guest) == 0);
    REQUIRE(*host.soft_reclaim(5));
    CHECK(*host.hard_reclaim(5) == HardReclaim::taken_was_soft);
    CHECK(*host.hard_reclaim(5) == HardReclaim::refused);  // already taken
    CHECK(inst.tree_free(0) == 4096 - 1024);

    // The guest never gets a frame of a hard-reclaimed child.
    std::set<uint64_t> got;
    struct llf_result r {};
    while (llf_get(&inst.guest, 2, 0, &r) == LLF_OK) {
        CHECK(r.frame / 512 != 3);
        CHECK(r.frame / 512 != 5);
        got.insert(r.frame);
    }
    CHECK(got.size() == 4096 - 1024);
    CHECK(*host.hard_reclaim(0) == HardReclaim::refused);  // in use
    CHECK(inst.tree_free(0) == 0);
    for (uint64_t f : got) REQUIRE(llf_put(&inst.guest, 0, f, 0) == LLF_OK);

    // Return: free again but unbacked; the allocation reports it.
    CHECK(*host.return_child(3) == true);
    CHECK(*host.return_child(3) == false);  // not hard-reclaimed any more
    CHECK(*host.return_child(4) == false);  // never was
    CHECK(entry(host, 3) == llf_child_make(512, false, true));
    CHECK(inst.tree_free(0) == 4096 - 512);
    CHECK(llf_check(&inst.guest) == 0);

    CHECK(*host.install(3) == Install::cleared);
    CHECK(*host.install(3) == Install::not_reclaimed);
    CHECK(entry(host, 3) == llf_child_make(512, false, false));
    CHECK(*host.return_child(5));
    CHECK(inst.tree_free(0) == 4096);
    CHECK(llf_check(&inst.guest) == 0);
}

TEST_CASE("LLFree allocations report reclaimed children", "[llfree]") {
    TestInstance inst(LLF_TREE_FRAMES);
    HostView host = inst.host();
    take_all_children(inst);
    struct llf_result r {};

    SECTION("order 0: until installed") {
        REQUIRE(llf_put(&inst.guest, 0, 6 * 512, 9) == LLF_OK);
        REQUIRE(*host.soft_reclaim(6));
        REQUIRE(llf_get(&inst.guest, 0, 0, &r) == LLF_OK);
        CHECK(r.frame / 512 == 6);
        CHECK(r.reclaimed_mask == 1);
        REQUIRE(llf_get(&inst.guest, 1, 0, &r) == LLF_OK);
        CHECK(r.reclaimed_mask == 1);  // a second CPU before the install
        REQUIRE(*host.install(6) == Install::cleared);
        REQUIRE(llf_get(&inst.guest, 0, 4, &r) == LLF_OK);
        CHECK(r.reclaimed_mask == 0);
        CHECK(llf_child_reclaimed(entry(host, 6)) == false);
    }
    SECTION("order 9 from a returned child keeps the flag while huge") {
        REQUIRE(llf_put(&inst.guest, 0, 5 * 512, 9) == LLF_OK);
        REQUIRE(*host.hard_reclaim(5) == HardReclaim::taken);
        REQUIRE(*host.return_child(5));
        REQUIRE(llf_get(&inst.guest, 0, 9, &r) == LLF_OK);
        CHECK(r.frame == 5 * 512);
        CHECK(r.reclaimed_mask == 1);
        CHECK(entry(host, 5) == llf_child_make(0, true, true));
        REQUIRE(*host.install(5) == Install::cleared);
        REQUIRE(llf_put(&inst.guest, 0, 5 * 512, 9) == LLF_OK);
        CHECK(entry(host, 5) == llf_child_make(512, false, false));
    }
    SECTION("order 10: one bit per child") {
        REQUIRE(llf_put(&inst.guest, 0, 2 * 512, 9) == LLF_OK);
        REQUIRE(llf_put(&inst.guest, 0, 3 * 512, 9) == LLF_OK);
        REQUIRE(*host.soft_reclaim(3));
        REQUIRE(llf_get(&inst.guest, 0, 10, &r) == LLF_OK);
        CHECK(r.frame == 2 * 512);
        CHECK(r.reclaimed_mask == 2);
        REQUIRE(llf_put(&inst.guest, 0, 2 * 512, 10) == LLF_OK);
        REQUIRE(*host.soft_reclaim(2));
        REQUIRE(llf_get(&inst.guest, 0, 10, &r) == LLF_OK);
        CHECK(r.reclaimed_mask == 3);
        // Reclaimed flags survive the free.
        REQUIRE(llf_put(&inst.guest, 0, 2 * 512, 10) == LLF_OK);
        CHECK(entry(host, 2) == llf_child_make(512, false, true));
    }
    CHECK(llf_check(&inst.guest) == 0);
}

TEST_CASE("LLFree host operations refuse corrupted entries", "[llfree]") {
    TestInstance inst(LLF_TREE_FRAMES + 3 * LLF_CHILD_FRAMES);
    HostView host = inst.host();

    SECTION("child free count above 512") {
        inst.poke_child(2, 600);
        CHECK(*host.soft_reclaim(2) == false);
        CHECK(*host.hard_reclaim(2) == HardReclaim::refused);
        CHECK(*host.return_child(2) == false);
        CHECK(entry(host, 2) == 600);
        CHECK(inst.tree_free(0) == 4096);
    }
    SECTION("tree count above 4096") {
        inst.poke_tree(0, 5000);
        CHECK(*host.soft_reclaim(1) == false);
        CHECK(*host.hard_reclaim(1) == HardReclaim::refused);
        CHECK(entry(host, 1) == llf_child_make(512, false, false));
        CHECK(inst.tree_free(0) == 5000);
    }
    SECTION("an absent child slot is out of range") {
        CHECK(host.child_entry(10).has_value());  // 11 children: slots 11..15 absent
        CHECK_FALSE(host.child_entry(11).has_value());
        CHECK_FALSE(host.hard_reclaim(11).has_value());
        CHECK(inst.tree_free(1) == 3 * 512);
    }
    SECTION("return when the tree cannot take the frames back") {
        REQUIRE(*host.hard_reclaim(1) == HardReclaim::taken);
        inst.poke_tree(0, 4000);
        CHECK(*host.return_child(1) == true);  // the child is the guest's again
        CHECK(inst.tree_free(0) == 4000);      // the corrupt counter is left alone
    }
    SECTION("hard reclaim gives the tree count back when the child refuses") {
        inst.poke_child(4, llf_child_make(512, true, false));  // huge yet "free"
        CHECK(*host.hard_reclaim(4) == HardReclaim::refused);
        CHECK(inst.tree_free(0) == 4096);  // the 512 went back
    }
}

TEST_CASE("LLFree host operations check their indices and addresses", "[llfree]") {
    TestInstance inst(LLF_TREE_FRAMES);
    HostView host = inst.host();
    const uint64_t past = host.layout().children();
    CHECK_FALSE(host.child_entry(past).has_value());
    CHECK_FALSE(host.soft_reclaim(past).has_value());
    CHECK_FALSE(host.hard_reclaim(past).has_value());
    CHECK_FALSE(host.return_child(past).has_value());
    CHECK_FALSE(host.install(past).has_value());
    CHECK_FALSE(host.is_reclaimed(UINT64_MAX).has_value());
    CHECK_FALSE(host.tree_entry(1).has_value());
    CHECK(host.child_address(2).raw == 2ull * 512 * 4096);

    // Arrays outside guest RAM: every access is an Error, never a fault.
    InstanceLayout bad = inst.layout;
    bad.lower = memory::GuestAddress(1ull << 40);
    bad.trees = memory::GuestAddress(UINT64_MAX - 1);
    HostView outside(*inst.mem, bad);
    auto soft = outside.soft_reclaim(0);
    REQUIRE_FALSE(soft.has_value());
    CHECK_FALSE(outside.hard_reclaim(0).has_value());
    CHECK_FALSE(outside.return_child(0).has_value());
    CHECK_FALSE(outside.install(0).has_value());
    CHECK(llf_check(&inst.guest) == 0);
}

}  // namespace vmm::balloon::llfree::test
