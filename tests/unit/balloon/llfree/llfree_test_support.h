// One LLFree instance whose shared arrays live in a test GuestMemory: the guest role
// (llfree.c) reaches them through the region's raw mapping (tests only), the host
// role through HostView. Layout in guest memory: trees at GPA 0, lower at the next
// page. The managed frames themselves are not backed (nothing here touches them).
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <vector>

#include "balloon/llfree/llfree.h"
#include "balloon/llfree/llfree_host.h"
#include "memory/guest_memory.h"

namespace vmm::balloon::llfree::test {

inline constexpr uint64_t kPage = 4096;

inline uint64_t page_align(uint64_t v) { return (v + kPage - 1) / kPage * kPage; }

class TestInstance {
public:
    // `frames` managed frames from base_pfn; all free unless all_free is false.
    explicit TestInstance(uint64_t frames, bool all_free = true, uint64_t base_pfn = 0)
        : m_local(LLF_MAX_CPUS) {
        layout.base_pfn = base_pfn;
        layout.frames = frames;
        layout.trees = memory::GuestAddress(0);
        layout.lower = memory::GuestAddress(page_align(llf_trees_bytes(frames)));
        memory::GuestRange range{memory::GuestAddress(0),
                                 page_align(layout.lower.raw + llf_lower_bytes(frames))};
        auto created = memory::GuestMemory::create(std::span<const memory::GuestRange>(&range, 1));
        REQUIRE(created.has_value());
        mem = std::make_unique<memory::GuestMemory>(std::move(created).value());
        raw = reinterpret_cast<uint8_t*>(mem->regions()[0].host_address_for_kvm());
        REQUIRE(llf_init(&guest, base_pfn, frames, raw, raw + layout.lower.raw, m_local.data()) == LLF_OK);
        if (all_free) REQUIRE(llf_init_free(&guest, 0, frames) == LLF_OK);
    }
    TestInstance(const TestInstance&) = delete;
    TestInstance& operator=(const TestInstance&) = delete;

    HostView host() const { return HostView(*mem, layout); }

    // Raw (non-atomic) pokes for the hostile tests, with no concurrent users.
    void poke_child(uint64_t child, uint16_t value) {
        REQUIRE(mem->store<uint16_t>(layout.lower.unchecked_add(llf_child_entry_offset(layout.frames, child)),
                                     value, std::memory_order_release));
    }
    void poke_tree(uint64_t tree, uint16_t value) {
        REQUIRE(mem->store<uint16_t>(layout.trees.unchecked_add(llf_tree_entry_offset(tree)), value,
                                     std::memory_order_release));
    }
    uint16_t tree_free(uint64_t tree) const {
        auto e = host().tree_entry(tree);
        REQUIRE(e.has_value());
        return llf_tree_free(*e);
    }

    std::unique_ptr<memory::GuestMemory> mem;
    uint8_t* raw = nullptr;
    InstanceLayout layout;
    struct llfree guest {};

private:
    std::vector<llf_local> m_local;
};

}  // namespace vmm::balloon::llfree::test
