/* The guest side of LLFree (see llfree.h for the API and llfree_layout.h for the
 * shared state). Freestanding C11: no libc, only GCC/Clang __atomic builtins, no
 * floating point, no libgcc helpers (popcount is open-coded).
 *
 * Every word that the host or another CPU may change is only touched with __atomic
 * operations. The order of the steps keeps the invariants the host relies on:
 *   - get takes the tree counter, then the child counter, then the bits;
 *   - put clears the bits, then raises the child counter, then the tree counter;
 * so at every moment tree counter <= sum of its child counters and a child counter
 * <= the zero bits of its bitfield. A child counter of 512 therefore means that
 * every bit is clear and no allocation is in flight in it: the host may reclaim it
 * with one CAS on the child entry, and that CAS orders it against every guest get. */
#include "balloon/llfree/llfree.h"

#define LLF_ACQ __ATOMIC_ACQUIRE
#define LLF_REL __ATOMIC_RELEASE
#define LLF_AR __ATOMIC_ACQ_REL
#define LLF_RLX __ATOMIC_RELAXED

/* Largest instance accepted: keeps every size computation far from overflow and
 * every tree index within the 32-bit hints. */
#define LLF_MAX_FRAMES (1ull << 40)

/* ---- addressing ---- */

static inline uint64_t *bitfield(const struct llfree *l, uint64_t child)
{
    return (uint64_t *)(void *)(l->lower + llf_bitfield_offset(child));
}
static inline uint16_t *child_word(const struct llfree *l, uint64_t child)
{
    return (uint16_t *)(void *)(l->lower + llf_child_entry_offset(l->frames, child));
}
static inline uint16_t *tree_word(const struct llfree *l, uint64_t tree)
{
    return &l->tree_entries[tree];
}
static inline struct llf_local *local_of(struct llfree *l, unsigned cpu)
{
    return l->local ? &l->local[cpu % LLF_MAX_CPUS] : (struct llf_local *)0;
}

static unsigned popcount64(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* Mask of `n` bits from bit `pos` (n <= 64). */
static inline uint64_t run_mask(unsigned n, unsigned pos)
{
    return (n >= 64 ? ~0ull : ((1ull << n) - 1)) << pos;
}

/* ---- tree counter ---- */

static bool tree_take(struct llfree *l, uint64_t tree, uint16_t n)
{
    uint16_t *w = tree_word(l, tree);
    uint16_t old = __atomic_load_n(w, LLF_ACQ);
    for (;;) {
        uint16_t new_value;
        if (llf_tree_free(old) > LLF_TREE_FRAMES || !llf_tree_try_take(old, n, &new_value)) return false;
        if (__atomic_compare_exchange_n(w, &old, new_value, true, LLF_AR, LLF_ACQ)) return true;
    }
}

/* Only gives back what this guest took or freed: the counter cannot pass 4096. */
static void tree_give(struct llfree *l, uint64_t tree, uint16_t n)
{
    __atomic_fetch_add(tree_word(l, tree), n, LLF_AR);
}

/* ---- allocation inside one child ---- */

/* Takes n (< 512) from a child counter; false when huge or short. */
static bool child_take(struct llfree *l, uint64_t child, uint16_t n, bool *was_reclaimed)
{
    uint16_t *w = child_word(l, child);
    uint16_t old = __atomic_load_n(w, LLF_ACQ);
    for (;;) {
        uint16_t avail = llf_child_free(old);
        if (llf_child_huge(old) || avail < n || avail > LLF_CHILD_FRAMES) return false;
        /* The free count is the low bits: subtracting keeps huge/reclaimed. */
        if (__atomic_compare_exchange_n(w, &old, (uint16_t)(old - n), true, LLF_AR, LLF_ACQ)) {
            *was_reclaimed = llf_child_reclaimed(old);
            return true;
        }
    }
}

/* Bits set in the result: the first bit of every aligned run of 2^order (<= 6)
 * zero bits in word. */
static uint64_t aligned_free_runs(uint64_t word, unsigned order)
{
    static const uint64_t starts[7] = {
        ~0ull, 0x5555555555555555ull, 0x1111111111111111ull, 0x0101010101010101ull,
        0x0001000100010001ull, 0x0000000100000001ull, 0x1ull,
    };
    uint64_t f = ~word;
    for (unsigned s = 1; s < (1u << order); s <<= 1) f &= f >> s;
    return f & starts[order];
}

/* Sets an aligned run of 2^order (< 9) zero bits; returns its first frame within
 * the child, or -1 when there is none. */
static int child_set_bits(struct llfree *l, uint64_t child, unsigned order)
{
    uint64_t *bf = bitfield(l, child);
    unsigned n = 1u << order;
    if (order <= 6) {
        for (unsigned i = 0; i < LLF_BITFIELD_WORDS; i++) {
            uint64_t old = __atomic_load_n(&bf[i], LLF_ACQ);
            for (;;) {
                uint64_t runs = aligned_free_runs(old, order);
                if (!runs) break;
                unsigned pos = (unsigned)__builtin_ctzll(runs);
                if (__atomic_compare_exchange_n(&bf[i], &old, old | run_mask(n, pos), true, LLF_AR, LLF_ACQ))
                    return (int)(i * 64 + pos);
            }
        }
        return -1;
    }
    /* Orders 7 and 8: 2 or 4 whole words, claimed one by one, undone on failure. */
    unsigned words = n / 64;
    for (unsigned first = 0; first < LLF_BITFIELD_WORDS; first += words) {
        unsigned got = 0;
        for (; got < words; got++) {
            uint64_t expected = 0;
            if (!__atomic_compare_exchange_n(&bf[first + got], &expected, ~0ull, false, LLF_AR, LLF_ACQ))
                break;
        }
        if (got == words) return (int)(first * 64);
        while (got--) __atomic_store_n(&bf[first + got], 0, LLF_REL);
    }
    return -1;
}

/* Order < 9 in one child: counter first, then the bits; undone when the bits are
 * too fragmented (or taken by a racing CPU). */
static bool get_small(struct llfree *l, uint64_t child, unsigned order, struct llf_result *out)
{
    uint16_t n = (uint16_t)(1u << order);
    bool reclaimed = false;
    if (!child_take(l, child, n, &reclaimed)) return false;
    int offset = child_set_bits(l, child, order);
    if (offset < 0) {
        /* Cannot pass 512: n of it were taken by this call above. */
        __atomic_fetch_add(child_word(l, child), n, LLF_AR);
        return false;
    }
    out->frame = child * LLF_CHILD_FRAMES + (uint64_t)offset;
    out->reclaimed_mask = reclaimed ? 1u : 0u;
    return true;
}

/* Order 9: an entirely free child becomes huge; its reclaimed bit stays. */
static bool child_take_huge(struct llfree *l, uint64_t child, bool *was_reclaimed)
{
    uint16_t *w = child_word(l, child);
    uint16_t old = __atomic_load_n(w, LLF_ACQ);
    for (;;) {
        if (llf_child_huge(old) || llf_child_free(old) != LLF_CHILD_FRAMES) return false;
        if (__atomic_compare_exchange_n(w, &old, llf_child_make(0, true, llf_child_reclaimed(old)), true,
                                        LLF_AR, LLF_ACQ)) {
            *was_reclaimed = llf_child_reclaimed(old);
            return true;
        }
    }
}

/* Huge -> entirely free, keeping the reclaimed bit (put of order >= 9, undo of a
 * half-taken order-10 pair). False if the child is not huge (a wrong free). */
static bool child_put_huge(struct llfree *l, uint64_t child)
{
    uint16_t *w = child_word(l, child);
    uint16_t old = __atomic_load_n(w, LLF_ACQ);
    for (;;) {
        if (!llf_child_huge(old) || llf_child_free(old) != 0) return false;
        if (__atomic_compare_exchange_n(w, &old, llf_child_make(LLF_CHILD_FRAMES, false, llf_child_reclaimed(old)),
                                        true, LLF_AR, LLF_ACQ))
            return true;
    }
}

static bool get_huge(struct llfree *l, uint64_t child, unsigned order, struct llf_result *out)
{
    bool first = false, second = false;
    if (!child_take_huge(l, child, &first)) return false;
    if (order == LLF_MAX_ORDER && !child_take_huge(l, child + 1, &second)) {
        child_put_huge(l, child);
        return false;
    }
    out->frame = child * LLF_CHILD_FRAMES;
    out->reclaimed_mask = (first ? 1u : 0u) | (second ? 2u : 0u);
    return true;
}

/* Tries every child of a tree whose counter already holds the 2^order frames. */
static bool get_in_tree(struct llfree *l, uint64_t tree, uint64_t hint, unsigned order, struct llf_result *out)
{
    uint64_t first = tree * LLF_TREE_CHILDREN;
    uint64_t children = llf_children(l->frames);
    unsigned step = order == LLF_MAX_ORDER ? 2u : 1u;
    uint64_t start = (hint >= first && hint < first + LLF_TREE_CHILDREN) ? hint - first : 0;
    start &= ~(uint64_t)(step - 1);
    for (unsigned i = 0; i < LLF_TREE_CHILDREN; i += step) {
        uint64_t child = first + (start + i) % LLF_TREE_CHILDREN;
        if (child + step > children) continue;  /* absent slot (or half a pair) */
        bool got = order < LLF_CHILD_ORDER ? get_small(l, child, order, out) : get_huge(l, child, order, out);
        if (got) return true;
    }
    return false;
}

int llf_get(struct llfree *l, unsigned cpu, unsigned order, struct llf_result *out)
{
    if (!l || !out || order > LLF_MAX_ORDER) return LLF_EINVAL;
    uint16_t n = (uint16_t)(1u << order);
    struct llf_local *local = local_of(l, cpu);
    uint64_t tree_hint = local ? __atomic_load_n(&local->tree_hint, LLF_RLX) : 0;
    uint64_t child_hint = local ? __atomic_load_n(&local->child_hint, LLF_RLX) : 0;
    if (tree_hint >= l->trees) tree_hint = 0;

    for (uint64_t i = 0; i < l->trees; i++) {
        uint64_t tree = (tree_hint + i) % l->trees;
        if (!tree_take(l, tree, n)) continue;
        if (get_in_tree(l, tree, child_hint, order, out)) {
            if (local) {
                __atomic_store_n(&local->tree_hint, (uint32_t)tree, LLF_RLX);
                __atomic_store_n(&local->child_hint, (uint32_t)(out->frame / LLF_CHILD_FRAMES), LLF_RLX);
            }
            return LLF_OK;
        }
        /* Enough frames in the counter but no child with an aligned run of them. */
        tree_give(l, tree, n);
    }
    return LLF_ENOMEM;
}

/* ---- free ---- */

/* Clears the bits of [offset, offset + 2^order) (order < 9) in a child's bitfield.
 * All must be set; otherwise nothing is changed (barring a racing wrong free of
 * the same frames, which still leaves every counter matching the bits: the return
 * value is the number of frames actually cleared, *complete tells whether all). */
static unsigned child_clear_bits(struct llfree *l, uint64_t child, unsigned offset, unsigned order, bool *complete)
{
    uint64_t *bf = bitfield(l, child);
    unsigned n = 1u << order;
    *complete = false;
    if (order <= 6) {
        uint64_t *w = &bf[offset / 64];
        uint64_t mask = run_mask(n, offset % 64);
        uint64_t old = __atomic_load_n(w, LLF_ACQ);
        for (;;) {
            if ((old & mask) != mask) return 0;
            if (__atomic_compare_exchange_n(w, &old, old & ~mask, true, LLF_AR, LLF_ACQ)) break;
        }
        *complete = true;
        return n;
    }
    unsigned first = offset / 64, words = n / 64;
    for (unsigned i = 0; i < words; i++)
        if (__atomic_load_n(&bf[first + i], LLF_ACQ) != ~0ull) return 0;
    for (unsigned i = 0; i < words; i++) {
        uint64_t expected = ~0ull;
        if (!__atomic_compare_exchange_n(&bf[first + i], &expected, 0, false, LLF_AR, LLF_ACQ)) return i * 64;
    }
    *complete = true;
    return n;
}

int llf_put(struct llfree *l, unsigned cpu, uint64_t frame, unsigned order)
{
    (void)cpu; /* frees need no hint */
    if (!l || order > LLF_MAX_ORDER) return LLF_EINVAL;
    uint64_t n = 1ull << order;
    if (frame >= l->frames || (frame & (n - 1)) != 0 || n > l->frames - frame) return LLF_EINVAL;
    uint64_t child = frame / LLF_CHILD_FRAMES;
    uint64_t tree = child / LLF_TREE_CHILDREN;

    if (order >= LLF_CHILD_ORDER) {
        if (order == LLF_MAX_ORDER &&
            !llf_child_huge(__atomic_load_n(child_word(l, child + 1), LLF_ACQ)))
            return LLF_EINVAL;
        if (!child_put_huge(l, child)) return LLF_EINVAL;
        tree_give(l, tree, LLF_CHILD_FRAMES);
        /* The second half can only be lost to a racing wrong free of it, which then
         * frees (and counts) it itself. */
        if (order == LLF_MAX_ORDER) {
            if (!child_put_huge(l, child + 1)) return LLF_EINVAL;
            tree_give(l, tree, LLF_CHILD_FRAMES);
        }
        return LLF_OK;
    }

    /* A huge child's frames were allocated at order 9/10 (or are the host's): its
     * bits are all clear, so the bit check below refuses too; this is the fast,
     * explicit answer to a free at the wrong order. */
    if (llf_child_huge(__atomic_load_n(child_word(l, child), LLF_ACQ))) return LLF_EINVAL;
    bool complete = false;
    unsigned cleared = child_clear_bits(l, child, (unsigned)(frame % LLF_CHILD_FRAMES), order, &complete);
    if (cleared) {
        /* Bits first, then the counters: neither can pass its maximum. */
        __atomic_fetch_add(child_word(l, child), (uint16_t)cleared, LLF_AR);
        tree_give(l, tree, (uint16_t)cleared);
    }
    return complete ? LLF_OK : LLF_EINVAL;
}

/* ---- set-up ---- */

int llf_init(struct llfree *l, uint64_t base_pfn, uint64_t frames, void *trees_mem, void *lower_mem,
             struct llf_local *local)
{
    if (!l || !trees_mem || !lower_mem || frames == 0 || frames > LLF_MAX_FRAMES) return LLF_EINVAL;
    if (base_pfn % LLF_BASE_ALIGN_FRAMES != 0) return LLF_EINVAL;
    if ((uintptr_t)trees_mem % LLF_ALIGN != 0 || (uintptr_t)lower_mem % LLF_ALIGN != 0) return LLF_EINVAL;

    l->base_pfn = base_pfn;
    l->frames = frames;
    l->trees = llf_trees(frames);
    l->tree_entries = (uint16_t *)trees_mem;
    l->lower = (uint8_t *)lower_mem;
    l->local = local;

    /* Stores are atomic (relaxed) so that the compiler cannot turn the loops into
     * memset calls, which the freestanding guest does not have. */
    uint64_t slots = l->trees * LLF_TREE_CHILDREN;
    uint64_t children = llf_children(frames);
    for (uint64_t i = 0; i < slots * LLF_BITFIELD_WORDS; i++)
        __atomic_store_n(&((uint64_t *)lower_mem)[i], ~0ull, LLF_RLX);
    uint8_t *groups = l->lower + slots * LLF_BITFIELD_BYTES;
    for (uint64_t i = 0; i < l->trees * LLF_CHILD_GROUP_BYTES; i++) __atomic_store_n(&groups[i], 0, LLF_RLX);
    for (uint64_t c = 0; c < slots; c++)
        __atomic_store_n(child_word(l, c), c < children ? llf_child_make(0, false, false) : LLF_CHILD_ABSENT, LLF_RLX);
    uint8_t *tree_bytes = (uint8_t *)trees_mem;
    for (uint64_t i = 0; i < llf_trees_bytes(frames); i++) __atomic_store_n(&tree_bytes[i], 0, LLF_RLX);
    if (local) {
        for (unsigned cpu = 0; cpu < LLF_MAX_CPUS; cpu++) {
            __atomic_store_n(&local[cpu].tree_hint, 0, LLF_RLX);
            __atomic_store_n(&local[cpu].child_hint, 0, LLF_RLX);
        }
    }
    return LLF_OK;
}

int llf_init_free(struct llfree *l, uint64_t frame, uint64_t count)
{
    if (!l || frame > l->frames || count > l->frames - frame) return LLF_EINVAL;
    uint64_t end = frame + count;
    while (frame < end) {
        uint64_t child = frame / LLF_CHILD_FRAMES;
        uint64_t word = frame / 64;
        unsigned pos = (unsigned)(frame % 64);
        unsigned len = (unsigned)(end - frame < 64 - pos ? end - frame : 64 - pos);
        uint64_t *w = &bitfield(l, child)[word % LLF_BITFIELD_WORDS];
        uint64_t old = __atomic_load_n(w, LLF_RLX);
        uint64_t mask = run_mask(len, pos);
        uint16_t freed = (uint16_t)popcount64(old & mask);  /* already free: no change */
        __atomic_store_n(w, old & ~mask, LLF_RLX);
        uint16_t *cw = child_word(l, child);
        __atomic_store_n(cw, (uint16_t)(__atomic_load_n(cw, LLF_RLX) + freed), LLF_RLX);
        uint16_t *tw = tree_word(l, child / LLF_TREE_CHILDREN);
        __atomic_store_n(tw, (uint16_t)(__atomic_load_n(tw, LLF_RLX) + freed), LLF_RLX);
        frame += len;
    }
    return LLF_OK;
}

/* ---- queries ---- */

uint64_t llf_free_frames(const struct llfree *l)
{
    uint64_t sum = 0;
    for (uint64_t t = 0; t < l->trees; t++) sum += llf_tree_free(__atomic_load_n(tree_word(l, t), LLF_RLX));
    return sum;
}

uint16_t llf_child_entry(const struct llfree *l, uint64_t child)
{
    if (child >= llf_children(l->frames)) return LLF_CHILD_ABSENT;
    return __atomic_load_n(child_word(l, child), LLF_ACQ);
}

bool llf_is_reclaimed(const struct llfree *l, uint64_t frame)
{
    if (frame >= l->frames) return false;
    return llf_child_reclaimed(llf_child_entry(l, frame / LLF_CHILD_FRAMES));
}

/* Bits of a child's bitfield word that lie past the last frame (must stay set). */
static uint64_t past_end_mask(const struct llfree *l, uint64_t child, unsigned word)
{
    uint64_t first = child * LLF_CHILD_FRAMES + word * 64u;
    if (first >= l->frames) return ~0ull;
    uint64_t valid = l->frames - first;
    return valid >= 64 ? 0 : ~0ull << valid;
}

uint64_t llf_check(const struct llfree *l)
{
    uint64_t children = llf_children(l->frames);
    for (uint64_t c = 0; c < l->trees * LLF_TREE_CHILDREN; c++) {
        uint16_t e = __atomic_load_n(child_word(l, c), LLF_ACQ);
        if (c >= children) {
            if (e != LLF_CHILD_ABSENT) return c + 1;
            continue;
        }
        unsigned zeros = 0;
        for (unsigned i = 0; i < LLF_BITFIELD_WORDS; i++) {
            uint64_t w = __atomic_load_n(&bitfield(l, c)[i], LLF_ACQ);
            uint64_t past = past_end_mask(l, c, i);
            if ((w & past) != past) return c + 1;
            zeros += 64u - popcount64(w);
        }
        /* A huge child's bits are all clear (it became huge entirely free). */
        unsigned expected = llf_child_huge(e) ? 0u : zeros;
        if (llf_child_huge(e) && zeros != LLF_CHILD_FRAMES) return c + 1;
        if (llf_child_free(e) != expected) return c + 1;
    }
    for (uint64_t t = 0; t < l->trees; t++) {
        unsigned sum = 0;
        for (unsigned i = 0; i < LLF_TREE_CHILDREN; i++) {
            uint64_t c = t * LLF_TREE_CHILDREN + i;
            if (c < children) sum += llf_child_free(__atomic_load_n(child_word(l, c), LLF_ACQ));
        }
        uint16_t e = __atomic_load_n(tree_word(l, t), LLF_ACQ);
        if (llf_tree_free(e) != sum || llf_tree_reserved(e)) return children + t + 1;
    }
    return 0;
}
