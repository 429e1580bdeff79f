// HostView: the HyperAlloc host operations on LLFree state in guest RAM. Every word
// is guest-writable at any moment, so each operation is a bounded load / pure step /
// compare-and-swap loop (llfree_layout.h): a guest that keeps flipping a word gets an
// Error after kMaxCasTries instead of hanging the host, and a corrupted entry makes
// the step refuse instead of being "repaired".
#include "balloon/llfree/llfree_host.h"

#include <atomic>

#include "common/log.h"

namespace vmm::balloon::llfree {
namespace {

using memory::GuestAddress;
using memory::GuestMemory;

// Far more than any honest contention (a few vCPUs racing on one word) needs.
constexpr int kMaxCasTries = 1000;

log::RateLimiter g_corrupt_limiter(10, std::chrono::seconds(10));

struct CasOutcome {
    bool applied;   // the step accepted and the CAS stored its result
    uint16_t old;   // the value the step saw last
};

// load -> step -> CAS until the CAS succeeds or the step refuses.
// step(old, &desired) is one of the llf_*_try_* helpers (or a lambda around one).
template <typename Step>
Result<CasOutcome> cas_loop(const GuestMemory& mem, GuestAddress addr, Step&& step) {
    uint16_t old = VMM_TRY(mem.load<uint16_t>(addr, std::memory_order_acquire));
    for (int i = 0; i < kMaxCasTries; ++i) {
        uint16_t desired = 0;
        if (!step(old, &desired)) return CasOutcome{false, old};
        uint16_t seen = VMM_TRY(mem.compare_exchange<uint16_t>(addr, old, desired));
        if (seen == old) return CasOutcome{true, old};
        old = seen;
    }
    return Error::msg("llfree: word at {:#x} is too contended ({} CAS tries)", addr.raw,
                      kMaxCasTries);
}

// A tree entry whose counter exceeds a whole tree was corrupted by the guest; the
// host then leaves the tree alone (no reclaim can be trusted to keep it consistent).
bool tree_sane(uint16_t entry) { return llf_tree_free(entry) <= LLF_TREE_FRAMES; }

bool take_child_pages(uint16_t old, uint16_t* out) {
    return tree_sane(old) && llf_tree_try_take(old, LLF_CHILD_FRAMES, out);
}
bool give_child_pages(uint16_t old, uint16_t* out) {
    return tree_sane(old) && llf_tree_try_give(old, LLF_CHILD_FRAMES, out);
}

}  // namespace

Result<GuestAddress> HostView::child_entry_address(uint64_t child) const {
    if (child >= m_layout.children())
        return Error::msg("llfree: child {} out of range ({} children)", child, m_layout.children());
    auto addr = m_layout.lower.checked_add(llf_child_entry_offset(m_layout.frames, child));
    if (!addr) return Error::msg("llfree: child {} entry address overflows", child);
    return *addr;
}

Result<GuestAddress> HostView::tree_entry_address(uint64_t tree) const {
    if (tree >= m_layout.tree_count())
        return Error::msg("llfree: tree {} out of range ({} trees)", tree, m_layout.tree_count());
    auto addr = m_layout.trees.checked_add(llf_tree_entry_offset(tree));
    if (!addr) return Error::msg("llfree: tree {} entry address overflows", tree);
    return *addr;
}

Result<uint16_t> HostView::child_entry(uint64_t child) const {
    GuestAddress addr = VMM_TRY(child_entry_address(child));
    return m_mem->load<uint16_t>(addr, std::memory_order_acquire);
}

Result<uint16_t> HostView::tree_entry(uint64_t tree) const {
    GuestAddress addr = VMM_TRY(tree_entry_address(tree));
    return m_mem->load<uint16_t>(addr, std::memory_order_acquire);
}

Result<bool> HostView::is_reclaimed(uint64_t child) const {
    uint16_t entry = VMM_TRY(child_entry(child));
    return llf_child_reclaimed(entry);
}

Result<bool> HostView::soft_reclaim(uint64_t child) const {
    GuestAddress child_addr = VMM_TRY(child_entry_address(child));
    // A reserved tree belongs to a CPU that may be about to allocate from any child
    // of it, and a tree with < 512 free cannot have an entirely free child that is
    // not already claimed by an allocation in flight.
    uint16_t tree = VMM_TRY(tree_entry(child / LLF_TREE_CHILDREN));
    if (!tree_sane(tree) || llf_tree_reserved(tree) || llf_tree_free(tree) < LLF_CHILD_FRAMES)
        return false;
    CasOutcome out = VMM_TRY(cas_loop(*m_mem, child_addr, llf_child_try_soft_reclaim));
    return out.applied;
}

Result<HardReclaim> HostView::hard_reclaim(uint64_t child) const {
    GuestAddress child_addr = VMM_TRY(child_entry_address(child));
    GuestAddress tree_addr = VMM_TRY(tree_entry_address(child / LLF_TREE_CHILDREN));

    // The tree counter first, like a guest allocation: once the 512 frames are taken
    // from it no guest can count on them, and the child CAS below only succeeds if
    // the child is still entirely free.
    CasOutcome tree = VMM_TRY(cas_loop(*m_mem, tree_addr, take_child_pages));
    if (!tree.applied) return HardReclaim::refused;

    auto taken = cas_loop(*m_mem, child_addr, llf_child_try_hard_reclaim);
    if (taken && taken->applied)
        return llf_child_reclaimed(taken->old) ? HardReclaim::taken_was_soft : HardReclaim::taken;

    // The child was not entirely free (or is contended): give the 512 back.
    auto given = cas_loop(*m_mem, tree_addr, give_child_pages);
    if (!given) return given.error().context("llfree: hard reclaim undo");
    if (!given->applied)
        return Error::msg("llfree: tree {} counter corrupted (hard reclaim undo refused, entry {:#x})",
                          child / LLF_TREE_CHILDREN, given->old);
    if (!taken) return taken.error();
    return HardReclaim::refused;
}

// A tree counter that cannot take the 512 frames back (it would exceed a whole tree,
// or the guest keeps flipping it) was corrupted by the guest. The child entry is
// already free and reclaimed again, so the child still counts as returned (true):
// the host's bookkeeping must follow the child entry. The corruption is logged here
// (rate-limited) and only hurts the guest's own accounting.
Result<bool> HostView::return_child(uint64_t child) const {
    GuestAddress child_addr = VMM_TRY(child_entry_address(child));
    GuestAddress tree_addr = VMM_TRY(tree_entry_address(child / LLF_TREE_CHILDREN));
    VMM_TRY(m_mem->load<uint16_t>(tree_addr, std::memory_order_acquire));  // reachable

    CasOutcome returned = VMM_TRY(cas_loop(*m_mem, child_addr, llf_child_try_return));
    if (!returned.applied) return false;

    auto given = cas_loop(*m_mem, tree_addr, give_child_pages);
    if ((!given || !given->applied) && g_corrupt_limiter.allow()) {
        log::warn("llfree: tree {} counter corrupted by the guest; child {} returned anyway ({})",
                  child / LLF_TREE_CHILDREN, child,
                  given ? fmt::format("entry {:#x}", given->old) : given.error().message());
    }
    return true;
}

Result<Install> HostView::install(uint64_t child) const {
    GuestAddress child_addr = VMM_TRY(child_entry_address(child));
    CasOutcome out = VMM_TRY(cas_loop(*m_mem, child_addr, llf_child_try_install));
    return out.applied ? Install::cleared : Install::not_reclaimed;
}

}  // namespace vmm::balloon::llfree
