/* The guest side of LLFree: a lock-free page-frame allocator whose state is the
 * shared layout of llfree_layout.h. Plain freestanding C11 with GCC/Clang __atomic
 * builtins (no libc): compiled into the test guest and into the host-side unit tests
 * (tests/unit/balloon/llfree), and meant for the guest kernel.
 *
 * Differences from the published LLFree, on purpose: no per-CPU tree reservation
 * (the free count always stays in the tree entry, so the host's view of how much is
 * free is exact and LLF_TREE_RESERVED is never set by this guest; the host still
 * honours it); per-CPU state is only a search hint. Allocation kinds are not used.
 *
 * Concurrency: llf_get / llf_put / queries may run on any number of CPUs at once and
 * concurrently with the host's operations (balloon/llfree/llfree_host.h).
 * llf_init and llf_init_free are single-threaded set-up. */
#ifndef BALLOON_LLFREE_H
#define BALLOON_LLFREE_H

#include "balloon/llfree/llfree_layout.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LLF_MAX_CPUS 64u

/* Per-CPU, guest-private. */
struct llf_local {
    uint32_t tree_hint;
    uint32_t child_hint;
    uint32_t pad[14];           /* one cache line per CPU */
};

struct llfree {
    uint64_t base_pfn;          /* 4 MiB-aligned first frame (absolute pfn) */
    uint64_t frames;            /* frames managed from base_pfn */
    uint64_t trees;             /* llf_trees(frames) */
    uint16_t *tree_entries;     /* shared: the trees array */
    uint8_t *lower;             /* shared: the lower array (bitfields, child groups) */
    struct llf_local *local;    /* private: LLF_MAX_CPUS entries */
};

struct llf_result {
    uint64_t frame;             /* first frame, relative to base_pfn */
    /* Bit i set: child (frame >> 9) + i was reclaimed by the host when this
     * allocation took it: the caller must have the host install that 2 MiB frame
     * before touching the memory. Orders < 10 use bit 0 only. */
    unsigned reclaimed_mask;
};

/* Lays out an instance over caller-provided memory (64-byte aligned,
 * llf_trees_bytes(frames) and llf_lower_bytes(frames) bytes) with every frame
 * allocated. Returns LLF_OK or LLF_EINVAL (unaligned base or memory, frames == 0). */
int llf_init(struct llfree *l, uint64_t base_pfn, uint64_t frames, void *trees_mem, void *lower_mem,
             struct llf_local *local);
/* Set-up only: marks [frame, frame+count) free (relative frames). */
int llf_init_free(struct llfree *l, uint64_t frame, uint64_t count);

/* Allocates 2^order frames (order 0..LLF_MAX_ORDER), naturally aligned. `cpu` only
 * picks the hint (taken modulo LLF_MAX_CPUS). LLF_OK, LLF_ENOMEM or LLF_EINVAL.
 * Every tree is tried once; under heavy contention ENOMEM can be transient (other
 * CPUs briefly held the counts of the last free frames), so a caller may retry. */
int llf_get(struct llfree *l, unsigned cpu, unsigned order, struct llf_result *out);
/* Frees what llf_get returned. LLF_EINVAL for a frame out of range, misaligned, or
 * not allocated at that order (a double free is detected, never corrupts state). */
int llf_put(struct llfree *l, unsigned cpu, uint64_t frame, unsigned order);

/* Queries (relaxed snapshots). */
uint64_t llf_free_frames(const struct llfree *l);                /* sum of tree counters */
uint16_t llf_child_entry(const struct llfree *l, uint64_t child);
bool llf_is_reclaimed(const struct llfree *l, uint64_t frame);
/* Consistency check for tests, with no concurrent users: every child counter equals
 * the zero bits of its bitfield (or 0 when huge, whose bits must all be clear), bits
 * past the last frame are set, absent slots are LLF_CHILD_ABSENT, every tree counter
 * is the sum of its children (and not reserved). Returns 0, or child + 1 for the
 * first inconsistent child, or llf_children(frames) + tree + 1 for a tree. */
uint64_t llf_check(const struct llfree *l);

#ifdef __cplusplus
}
#endif

#endif
