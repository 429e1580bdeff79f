/* The LLFree state that the guest and the host share (HyperAlloc, EuroSys 2025).
 *
 * This header is the single definition of the layout. It is plain C11 (stdint,
 * stdbool, stddef only) so that it compiles in the VMM (C++20), in the freestanding
 * test guest and in the guest kernel. Entries are defined by explicit masks, never by
 * C bitfields, so that every compiler agrees on the bits. The `llf_*_try_*` helpers
 * are the pure steps of the compare-and-swap loops: given the value just loaded they
 * either compute the new value (return true) or refuse (return false). Guest and
 * host run the same steps, each with its own way of doing the CAS.
 *
 * Geometry (must be identical on both sides: LLF_LAYOUT_VERSION names it):
 *   frame = 4 KiB; child = 512 frames (one 2 MiB huge frame); tree = 8 children
 *   (16 MiB). An instance starts at a 4 MiB-aligned frame (its base pfn) and manages
 *   `frames` frames from there.
 *   trees array: one 16-bit tree entry per tree, rounded up to 64 bytes.
 *   lower array: first one 64-byte bitfield per child (1 bit per frame,
 *   1 = allocated; bits past the last frame are 1), then one 64-byte group per tree
 *   holding its 8 child entries (16 bytes used, 48 padding; entries of children past
 *   the last frame are LLF_CHILD_ABSENT and never change).
 */
#ifndef BALLOON_LLFREE_LAYOUT_H
#define BALLOON_LLFREE_LAYOUT_H

#ifdef __KERNEL__
#include <linux/types.h>  /* the guest kernel (guest-kernel-config/patches) */
#else
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#endif

/* The helpers below are C; C++ includers (the VMM builds with -Wold-style-cast)
 * should not be warned about their casts. */
#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#endif

#define LLF_LAYOUT_VERSION 1u

#define LLF_FRAME_SHIFT 12u
#define LLF_FRAME_SIZE (1ull << LLF_FRAME_SHIFT)
#define LLF_CHILD_ORDER 9u                       /* 512 frames = 2 MiB */
#define LLF_CHILD_FRAMES (1u << LLF_CHILD_ORDER)
#define LLF_CHILD_BYTES (1ull << (LLF_CHILD_ORDER + LLF_FRAME_SHIFT))
#define LLF_TREE_CHILDREN 8u
#define LLF_TREE_FRAMES (LLF_CHILD_FRAMES * LLF_TREE_CHILDREN) /* 4096 = 16 MiB */
#define LLF_MAX_ORDER 10u                        /* 4 MiB: an aligned pair of children */
#define LLF_BASE_ALIGN_FRAMES 1024u              /* instance base: 4 MiB-aligned */
#define LLF_ALIGN 64u                            /* every shared array */
#define LLF_BITFIELD_BYTES 64u                   /* per child: 8 x u64 */
#define LLF_BITFIELD_WORDS 8u
#define LLF_CHILD_GROUP_BYTES 64u                /* per tree: 8 x u16 + padding */

/* Child entry (16 bit). */
#define LLF_CHILD_FREE_MASK 0x3fffu              /* bits 0-13: free frames, 0..512 */
#define LLF_CHILD_HUGE 0x4000u                   /* bit 14: allocated as one 2/4 MiB page */
#define LLF_CHILD_RECLAIMED 0x8000u              /* bit 15: the host took its memory */
/* A child slot past the end of the instance: no free frames, "huge" so that no
 * operation ever matches it. */
#define LLF_CHILD_ABSENT LLF_CHILD_HUGE

/* Tree entry (16 bit). */
#define LLF_TREE_FREE_MASK 0x1fffu               /* bits 0-12: free frames, 0..4096 */
#define LLF_TREE_RESERVED 0x2000u                /* bit 13: a CPU owns the tree */
#define LLF_TREE_KIND_SHIFT 14u                  /* bits 14-15: 0 fixed, 1 movable, 2 huge */
#define LLF_TREE_KIND_MASK 0xc000u

/* Error codes of the guest core (llfree.h), negative like the kernel's. */
#define LLF_OK 0
#define LLF_ENOMEM (-12)
#define LLF_EINVAL (-22)

static inline uint16_t llf_child_free(uint16_t e) { return (uint16_t)(e & LLF_CHILD_FREE_MASK); }
static inline bool llf_child_huge(uint16_t e) { return (e & LLF_CHILD_HUGE) != 0; }
static inline bool llf_child_reclaimed(uint16_t e) { return (e & LLF_CHILD_RECLAIMED) != 0; }
static inline uint16_t llf_child_make(uint16_t free, bool huge, bool reclaimed)
{
    return (uint16_t)((free & LLF_CHILD_FREE_MASK) | (huge ? LLF_CHILD_HUGE : 0u) |
                      (reclaimed ? LLF_CHILD_RECLAIMED : 0u));
}
static inline uint16_t llf_tree_free(uint16_t e) { return (uint16_t)(e & LLF_TREE_FREE_MASK); }
static inline bool llf_tree_reserved(uint16_t e) { return (e & LLF_TREE_RESERVED) != 0; }
static inline uint16_t llf_tree_make(uint16_t free, bool reserved, unsigned kind)
{
    return (uint16_t)((free & LLF_TREE_FREE_MASK) | (reserved ? LLF_TREE_RESERVED : 0u) |
                      ((kind << LLF_TREE_KIND_SHIFT) & LLF_TREE_KIND_MASK));
}

/* ---- sizes and index math (frame numbers are relative to the instance base) ---- */
static inline uint64_t llf_div_up(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
static inline uint64_t llf_align_up(uint64_t a, uint64_t b) { return llf_div_up(a, b) * b; }
static inline uint64_t llf_children(uint64_t frames) { return llf_div_up(frames, LLF_CHILD_FRAMES); }
static inline uint64_t llf_trees(uint64_t frames) { return llf_div_up(frames, LLF_TREE_FRAMES); }
static inline uint64_t llf_trees_bytes(uint64_t frames) { return llf_align_up(llf_trees(frames) * 2u, LLF_ALIGN); }
/* Bitfields of every child slot of every tree (full trees), then the child groups. */
static inline uint64_t llf_lower_bytes(uint64_t frames)
{
    return llf_trees(frames) * (LLF_TREE_CHILDREN * LLF_BITFIELD_BYTES + LLF_CHILD_GROUP_BYTES);
}
/* Byte offsets inside the lower array. */
static inline uint64_t llf_bitfield_offset(uint64_t child) { return child * LLF_BITFIELD_BYTES; }
static inline uint64_t llf_child_entry_offset(uint64_t frames, uint64_t child)
{
    return llf_trees(frames) * LLF_TREE_CHILDREN * LLF_BITFIELD_BYTES +
           (child / LLF_TREE_CHILDREN) * LLF_CHILD_GROUP_BYTES + (child % LLF_TREE_CHILDREN) * 2u;
}
static inline uint64_t llf_tree_entry_offset(uint64_t tree) { return tree * 2u; }
/* The base pfn of the instance that holds a zone starting at start_pfn. */
static inline uint64_t llf_base_pfn(uint64_t start_pfn) { return start_pfn & ~(uint64_t)(LLF_BASE_ALIGN_FRAMES - 1); }

/* ---- pure CAS steps shared by guest and host ---- */

/* Host soft reclaim: an entirely free, not huge, not yet reclaimed child becomes
 * reclaimed and stays free. The caller has checked that the tree is not reserved. */
static inline bool llf_child_try_soft_reclaim(uint16_t old, uint16_t *out)
{
    if (llf_child_free(old) != LLF_CHILD_FRAMES || llf_child_huge(old) || llf_child_reclaimed(old)) return false;
    *out = (uint16_t)(old | LLF_CHILD_RECLAIMED);
    return true;
}
/* Host hard reclaim: an entirely free child becomes allocated (huge, 0 free) and
 * reclaimed. Whether it was soft-reclaimed before is old's reclaimed bit. */
static inline bool llf_child_try_hard_reclaim(uint16_t old, uint16_t *out)
{
    if (llf_child_free(old) != LLF_CHILD_FRAMES || llf_child_huge(old)) return false;
    *out = llf_child_make(0, true, true);
    return true;
}
/* Host return: a hard-reclaimed child becomes free again, still reclaimed (unbacked). */
static inline bool llf_child_try_return(uint16_t old, uint16_t *out)
{
    if (!(llf_child_huge(old) && llf_child_reclaimed(old)) || llf_child_free(old) != 0) return false;
    *out = llf_child_make(LLF_CHILD_FRAMES, false, true);
    return true;
}
/* Host install: clears the reclaimed bit (refused when it is already clear). */
static inline bool llf_child_try_install(uint16_t old, uint16_t *out)
{
    if (!llf_child_reclaimed(old)) return false;
    *out = (uint16_t)(old & ~LLF_CHILD_RECLAIMED);
    return true;
}
/* Take n frames from a tree counter (guest get, host hard reclaim with n = 512). */
static inline bool llf_tree_try_take(uint16_t old, uint16_t n, uint16_t *out)
{
    if (llf_tree_reserved(old) || llf_tree_free(old) < n) return false;
    *out = (uint16_t)(old - n);
    return true;
}
/* Give n frames back to a tree counter (refused if it would exceed a full tree). */
static inline bool llf_tree_try_give(uint16_t old, uint16_t n, uint16_t *out)
{
    if ((uint32_t)llf_tree_free(old) + n > LLF_TREE_FRAMES) return false;
    *out = (uint16_t)(old + n);
    return true;
}

#ifdef __cplusplus
static_assert(sizeof(uint16_t) * LLF_TREE_CHILDREN <= LLF_CHILD_GROUP_BYTES, "child group too small");
static_assert(LLF_CHILD_FRAMES <= LLF_CHILD_FREE_MASK, "child counter too narrow");
static_assert(LLF_TREE_FRAMES <= LLF_TREE_FREE_MASK, "tree counter too narrow");
static_assert(LLF_BITFIELD_WORDS * 64u == LLF_CHILD_FRAMES, "one bit per frame of a child");
static_assert(LLF_BITFIELD_BYTES % LLF_ALIGN == 0 && LLF_CHILD_GROUP_BYTES % LLF_ALIGN == 0, "64-byte alignment");
static_assert((1u << LLF_MAX_ORDER) == 2u * LLF_CHILD_FRAMES, "max order is a child pair");
#else
_Static_assert(sizeof(uint16_t) * LLF_TREE_CHILDREN <= LLF_CHILD_GROUP_BYTES, "child group too small");
_Static_assert(LLF_CHILD_FRAMES <= LLF_CHILD_FREE_MASK, "child counter too narrow");
_Static_assert(LLF_TREE_FRAMES <= LLF_TREE_FREE_MASK, "tree counter too narrow");
_Static_assert(LLF_BITFIELD_WORDS * 64u == LLF_CHILD_FRAMES, "one bit per frame of a child");
#endif

#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#endif
