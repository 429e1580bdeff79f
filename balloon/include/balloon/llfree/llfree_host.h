// The host side of LLFree: the HyperAlloc host operations on one instance whose
// state lives in guest RAM, done through GuestMemory's checked atomics (no raw
// guest pointer). The guest changes the same words lock-free at any moment, so every
// operation is a load / pure step (llfree_layout.h) / compare-and-swap loop, and a
// value read is never trusted beyond the step that uses it. Host operations on one
// instance must be serialized by the caller (the device's zone lock).
#pragma once

#include <cstdint>

#include "balloon/llfree/llfree_layout.h"
#include "common/result.h"
#include "memory/guest_memory.h"

namespace vmm::balloon::llfree {

// Where one instance lives; checked by the device before a HostView is made
// (arrays inside one RAM region, 64-byte aligned, non-overlapping).
struct InstanceLayout {
    uint64_t base_pfn = 0;  // 4 MiB-aligned
    uint64_t frames = 0;
    memory::GuestAddress trees;  // llf_trees_bytes(frames) bytes
    memory::GuestAddress lower;  // llf_lower_bytes(frames) bytes

    uint64_t children() const { return llf_children(frames); }
    uint64_t tree_count() const { return llf_trees(frames); }
};

enum class HardReclaim {
    taken,           // was free and backed: the caller discards its memory
    taken_was_soft,  // was already soft-reclaimed (unbacked): nothing to discard
    refused,         // not entirely free, huge, or the tree is reserved/short
};

enum class Install {
    cleared,       // the reclaimed bit was set and is now clear
    not_reclaimed, // already clear (another vCPU installed it, or a confused guest)
};

// Every operation retries its CAS a bounded number of times: a guest that keeps
// changing a word gets an Error ("too contended"), never a hung host. Corrupted
// entries (child free > 512, tree free > 4096) make the operations refuse. Indices
// past children() / tree_count() and arrays outside RAM are Errors.
class HostView {
public:
    HostView(const memory::GuestMemory& memory, InstanceLayout layout) : m_mem(&memory), m_layout(layout) {}
    const InstanceLayout& layout() const { return m_layout; }

    // Child entry / tree entry as currently in guest memory.
    [[nodiscard]] Result<uint16_t> child_entry(uint64_t child) const;
    [[nodiscard]] Result<uint16_t> tree_entry(uint64_t tree) const;

    // Soft reclaim: true when this call set the bit (the caller discards the memory).
    [[nodiscard]] Result<bool> soft_reclaim(uint64_t child) const;
    // Hard reclaim: takes 512 frames from the tree counter, then the child.
    [[nodiscard]] Result<HardReclaim> hard_reclaim(uint64_t child) const;
    // Return a child this host hard-reclaimed: free again, still reclaimed. false if
    // the entry is not (huge, reclaimed, 0 free) -- the guest corrupted it. Only for
    // children the host's own bookkeeping says it holds: a guest's order-9/10
    // allocation of a soft-reclaimed child, not yet installed, has the very same
    // entry, and returning it would hand the guest's frames out twice. If the
    // child was returned but the tree counter cannot take the 512 back (the guest
    // corrupted it), this logs (rate-limited) and still returns true: the child entry
    // is what the host's bookkeeping follows.
    [[nodiscard]] Result<bool> return_child(uint64_t child) const;
    // Install: clears the reclaimed bit. The caller must refuse an install request
    // for a child it holds hard-reclaimed (a confused guest): clearing the bit there
    // would make return_child refuse it forever.
    [[nodiscard]] Result<Install> install(uint64_t child) const;
    [[nodiscard]] Result<bool> is_reclaimed(uint64_t child) const;

    // Guest-physical address of a child's 2 MiB of memory.
    memory::GuestAddress child_address(uint64_t child) const {
        return memory::GuestAddress((m_layout.base_pfn + child * LLF_CHILD_FRAMES) << LLF_FRAME_SHIFT);
    }

private:
    [[nodiscard]] Result<memory::GuestAddress> child_entry_address(uint64_t child) const;
    [[nodiscard]] Result<memory::GuestAddress> tree_entry_address(uint64_t tree) const;

    const memory::GuestMemory* m_mem;
    InstanceLayout m_layout;
};

}  // namespace vmm::balloon::llfree
