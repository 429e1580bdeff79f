/* The phase workload of balloon-follow mode (docs/test-guest.md), for the automatic
 * balloon's tests and evaluation: `testguest.phases=M1:S1,M2:S2,...` runs phase k
 * with a working set of the top Mk MiB of the region for at least Sk seconds.
 *
 * In each phase the workload writes every qword of its working set,
 * `testguest.passes=P` times (default 4: the phase's work), then keeps writing it
 * until the phase's time is up. With `testguest.ramp_s=R` a working set that grows
 * does so over R seconds first (each pass writes what it has so far). From the second pass on it first checks each page
 * still holds what the previous pass wrote (the host must never lose a page the
 * guest uses: a FAIL line otherwise). A phase whose work takes longer than Sk runs
 * over, so slow memory shows as elapsed time.
 *
 * The working set grows from the top of the region down in 2 MiB chunks. A chunk the
 * balloon holds cannot be used until the host lowers the target and the driver gives
 * the pages back: that wait is an allocation stall (counted once per chunk, timed,
 * and reported in the statistics, as Linux reports allocstall). */
#include "balloon_follow.h"

#define PHASE_MAX 16
#define CHUNK (2ul << 20)
#define CHUNK_PAGES ((uint32_t)(CHUNK / FOLLOW_PAGE))
#define MIB (1ul << 20)
#define STALL_LIMIT_MS 120000ul             /* a host that never deflates: FAIL, not a hang */

struct phase {
    uint32_t mib;
    uint32_t seconds;
};

/* "1280:40,128:40" -> phases; the count, or -1 (FAIL printed). */
static int parse_phases(const char *s, size_t len, struct phase *out)
{
    int n = 0;
    size_t i = 0;
    while (i < len) {
        uint64_t v[2] = { 0, 0 };
        for (int part = 0; part < 2; part++) {
            size_t digits = 0;
            for (; i < len && s[i] >= '0' && s[i] <= '9' && digits < 7; i++, digits++)
                v[part] = v[part] * 10 + (uint64_t)(s[i] - '0');
            char want = part == 0 ? ':' : ',';
            if (!digits || (i < len && s[i] != want) || (part == 0 && i >= len) || n >= PHASE_MAX)
                goto bad;
            if (i < len)
                i++;
        }
        out[n].mib = (uint32_t)v[0];
        out[n].seconds = (uint32_t)v[1];
        n++;
    }
    if (n > 0)
        return n;
bad:
    kprintf("TESTGUEST: FAIL balloon-phases: cannot parse phases '%.*s' (MiB:seconds,... at most %d)\n", (int)len,
            s, PHASE_MAX);
    return -1;
}

static uint64_t ms_since(uint64_t tsc) { return (rdtsc() - tsc) / (tsc_hz() / 1000); }

struct run {
    struct follow *f;
    uint64_t top;            /* end of the region */
    uint64_t gen;            /* what the latest pass wrote, per page: addr ^ gen */
    uint64_t stall_cycles;   /* this phase */
    uint64_t stalls;         /* this phase */
    int phase;
};

/* Makes chunk c (from the top) part of the working set, waiting for the balloon if
 * it holds those pages. 0 ok, -1 FAIL printed. */
static int grow_into(struct run *r, uint32_t c)
{
    struct follow *f = r->f;
    if ((uint64_t)(c + 1) * CHUNK_PAGES <= f->ws_pages)
        return 0;
    if (follow_free_pages(f) < CHUNK_PAGES) {
        uint64_t start = rdtsc();
        if (!r->stalls)
            kprintf("TESTGUEST: phase %d stall: waiting for the balloon (%u pages) to give back memory\n", r->phase,
                    f->actual);
        f->stalls++;
        r->stalls++;
        while (follow_free_pages(f) < CHUNK_PAGES) {
            if (follow_service(f, 0) < 0)
                return -1;
            if (ms_since(start) > STALL_LIMIT_MS) {
                kprintf("TESTGUEST: FAIL balloon-phases: waited %lu s for the balloon to give back memory "
                        "(balloon %u pages, working set %u pages of %u)\n", STALL_LIMIT_MS / 1000, f->actual,
                        f->ws_pages, f->max_pages);
                return -1;
            }
            cpu_relax();
        }
        r->stall_cycles += rdtsc() - start;
    }
    f->ws_pages += CHUNK_PAGES;
    return 0;
}

/* One pass over `chunks` chunks: checks the first `checked` (those the previous pass
 * wrote), writes them all. */
static int pass(struct run *r, uint32_t chunks, uint32_t checked)
{
    uint64_t prev = r->gen, gen = r->gen + 1;
    for (uint32_t c = 0; c < chunks; c++) {
        if (grow_into(r, c) < 0 || follow_service(r->f, 0) < 0)
            return -1;
        uint64_t base = r->top - (uint64_t)(c + 1) * CHUNK;
        for (uint64_t p = 0; p < CHUNK; p += FOLLOW_PAGE) {
            volatile uint64_t *q = (volatile uint64_t *)(base + p);
            if (c < checked && q[0] != ((base + p) ^ prev)) {
                kprintf("TESTGUEST: FAIL balloon-phases: page 0x%lx reads 0x%lx, expected 0x%lx\n", base + p, q[0],
                        (base + p) ^ prev);
                return -1;
            }
            for (uint64_t i = 0; i < FOLLOW_PAGE / 8; i++)
                q[i] = (base + p + i * 8) ^ gen;
        }
    }
    r->gen = gen;
    return 0;
}

int run_balloon_phases(struct follow *f, const char *spec, size_t len)
{
    struct phase phases[PHASE_MAX];
    int n = parse_phases(spec, len, phases);
    if (n < 0)
        return -1;
    uint64_t passes = cmdline_u64("passes", 4);
    uint64_t ramp_ms = cmdline_u64("ramp_s", 0) * 1000;
    struct run r = { f, FOLLOW_BASE + (uint64_t)f->max_pages * FOLLOW_PAGE, 0, 0, 0, 0 };
    uint64_t run_start = rdtsc(), work_ms = 0, stall_ms = 0;
    for (int k = 0; k < n; k++) {
        uint32_t chunks = (uint32_t)((uint64_t)phases[k].mib * MIB / CHUNK);
        if ((uint64_t)chunks * CHUNK_PAGES + CHUNK_PAGES > f->max_pages) {
            kprintf("TESTGUEST: FAIL balloon-phases: phase %d wants %u MiB; the region has %u pages\n", k,
                    phases[k].mib, f->max_pages);
            return -1;
        }
        /* A smaller working set frees the rest at once; a larger one grows as it is written. */
        if (f->ws_pages > chunks * CHUNK_PAGES)
            f->ws_pages = chunks * CHUNK_PAGES;
        r.stalls = r.stall_cycles = 0;
        r.phase = k;
        uint64_t start = rdtsc();
        kprintf("TESTGUEST: phase %d start ws=%u MiB for %u s at t=%lu ms\n", k, phases[k].mib, phases[k].seconds,
                ms_since(run_start));
        /* A growing working set ramps up over ramp_s seconds (as an application's heap
         * grows); the work's passes start once it is complete. */
        uint32_t written = 0;
        uint32_t from = f->ws_pages / CHUNK_PAGES;
        while (from < chunks && ms_since(start) < ramp_ms) {
            uint32_t upto = from + (uint32_t)((uint64_t)(chunks - from) * ms_since(start) / ramp_ms);
            if (pass(&r, upto, written) < 0 || follow_service(f, 0) < 0)
                return -1;
            written = upto;
        }
        for (uint64_t i = 0; i < passes; i++) {
            if (pass(&r, chunks, written) < 0)
                return -1;
            written = chunks;
        }
        uint64_t work = ms_since(start);
        uint64_t extra = 0;
        while (ms_since(start) < (uint64_t)phases[k].seconds * 1000) {
            if (pass(&r, chunks, written) < 0)
                return -1;
            extra++;
            if (!chunks && follow_service(f, 0) < 0)
                return -1;
        }
        uint64_t stall = r.stall_cycles / (tsc_hz() / 1000);
        work_ms += work;
        stall_ms += stall;
        kprintf("TESTGUEST: phase %d done ws=%u MiB work_ms=%lu stall_ms=%lu stalls=%lu extra_passes=%lu "
                "phase_ms=%lu\n", k, phases[k].mib, work, stall, r.stalls, extra, ms_since(start));
    }
    kprintf("TESTGUEST: phases done elapsed_ms=%lu work_ms=%lu stall_ms=%lu stalls=%lu\n", ms_since(run_start),
            work_ms, stall_ms, f->stalls);
    return 0;
}
