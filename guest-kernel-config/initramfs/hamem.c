/* hamem: the guest-side memory workload of the HyperAlloc Linux tests.
 *
 * Runs commands, from its arguments or else one per line on stdin (the serial
 * console, so a test can drive it), and answers each with "HAMEM:" lines ending in
 * "HAMEM: ok <command>" (or "HAMEM: error ..."):
 *   meminfo              MemTotal and MemFree (kB) from /proc/meminfo
 *   alloc MIB            map MIB MiB more, fill every 64-bit word with a pattern of
 *                        its address and a generation, verify it; keep it mapped
 *   verify               check every word of everything still held
 *   free                 unmap everything held
 *   stress SECONDS MIB   repeat alloc MIB / verify / free for SECONDS
 *   read PATH            read PATH to its end and keep it open (fills the page cache;
 *                        a block device's cache lives only while it is open)
 *   proc                 print /proc/hyperalloc (the guest driver's view)
 *   sleep SECONDS        wait
 *   quit                 exit
 * alloc, free and stress print MemFree before and after. Every mismatch found is
 * counted (and the first few printed); the tests assert the counts are 0.
 * Built statically by guest-kernel-config/build-guest.sh into the initramfs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ul * 1024ul)
#define MAX_REGIONS 256

struct region {
    uint64_t *words;
    size_t bytes;
    uint64_t generation;
};

static struct region regions[MAX_REGIONS];
static unsigned nregions;
static uint64_t next_generation = 1;
static unsigned long long total_mismatches;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* kB value of one /proc/meminfo field, or -1. */
static long meminfo_kb(const char *field)
{
    char buf[4096];
    int fd = open("/proc/meminfo", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    size_t len = strlen(field);
    for (char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (!strncmp(p, field, len) && p[len] == ':')
            return strtol(p + len + 1, NULL, 10);
    return -1;
}

static uint64_t pattern(const uint64_t *w, uint64_t generation)
{
    return ((uint64_t)(uintptr_t)w * 0x9E3779B97F4A7C15ull) ^ (generation << 48) ^ 0x48414d454dull;
}

static unsigned long long check_region(const struct region *r)
{
    unsigned long long bad = 0;
    size_t n = r->bytes / sizeof(uint64_t);
    for (size_t i = 0; i < n; i++) {
        uint64_t want = pattern(&r->words[i], r->generation);
        if (r->words[i] != want) {
            if (total_mismatches + bad < 5)
                printf("HAMEM: mismatch at %p: %#llx, want %#llx\n", (void *)&r->words[i],
                       (unsigned long long)r->words[i], (unsigned long long)want);
            bad++;
        }
    }
    total_mismatches += bad;
    return bad;
}

static size_t held_mib(void)
{
    size_t sum = 0;
    for (unsigned i = 0; i < nregions; i++)
        sum += regions[i].bytes;
    return sum / MIB;
}

static int do_alloc(unsigned long mib, int quiet)
{
    if (nregions == MAX_REGIONS || mib == 0) {
        printf("HAMEM: error alloc %lu: %s\n", mib, mib ? "too many regions" : "size 0");
        return -1;
    }
    long before = meminfo_kb("MemFree");
    double t0 = now_s();
    size_t bytes = mib * MIB;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("HAMEM: error alloc %lu: mmap: %s\n", mib, strerror(errno));
        return -1;
    }
    madvise(p, bytes, MADV_HUGEPAGE);
    struct region *r = &regions[nregions++];
    *r = (struct region){.words = p, .bytes = bytes, .generation = next_generation++};
    size_t n = bytes / sizeof(uint64_t);
    for (size_t i = 0; i < n; i++)
        r->words[i] = pattern(&r->words[i], r->generation);
    unsigned long long bad = check_region(r);
    long after = meminfo_kb("MemFree");
    if (!quiet)
        printf("HAMEM: alloc %lu MiB: MemFree %ld -> %ld kB, mismatches %llu, %.0f ms\n", mib, before,
               after, bad, (now_s() - t0) * 1e3);
    return 0;
}

static void do_verify(void)
{
    unsigned long long bad = 0;
    for (unsigned i = 0; i < nregions; i++)
        bad += check_region(&regions[i]);
    printf("HAMEM: verify %zu MiB: mismatches %llu\n", held_mib(), bad);
}

static void do_free(int quiet)
{
    long before = meminfo_kb("MemFree");
    size_t mib = held_mib();
    for (unsigned i = 0; i < nregions; i++)
        munmap(regions[i].words, regions[i].bytes);
    nregions = 0;
    long after = meminfo_kb("MemFree");
    if (!quiet)
        printf("HAMEM: free %zu MiB: MemFree %ld -> %ld kB\n", mib, before, after);
}

static void do_stress(double seconds, unsigned long mib)
{
    unsigned long long before_bad = total_mismatches, cycles = 0;
    long free_before = meminfo_kb("MemFree");
    double end = now_s() + seconds;
    do_free(1);
    while (now_s() < end) {
        if (do_alloc(mib, 1) < 0)
            break;
        do_free(1);
        cycles++;
    }
    printf("HAMEM: stress %llu cycles of %lu MiB in %.0f s: mismatches %llu, MemFree %ld -> %ld kB\n",
           cycles, mib, seconds, total_mismatches - before_bad, free_before, meminfo_kb("MemFree"));
}

static int open_files[16];
static unsigned nopen;

static void do_read(const char *path)
{
    static char buf[1 << 20];
    if (nopen == sizeof(open_files) / sizeof(open_files[0])) {
        printf("HAMEM: error read %s: too many open files\n", path);
        return;
    }
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("HAMEM: error read %s: %s\n", path, strerror(errno));
        return;
    }
    unsigned long long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        total += (unsigned long long)n;
    open_files[nopen++] = fd;
    printf("HAMEM: read %llu bytes from %s\n", total, path);
}

static void do_proc(void)
{
    FILE *f = fopen("/proc/hyperalloc", "r");
    char line[512];
    if (!f) {
        printf("HAMEM: error proc: %s\n", strerror(errno));
        return;
    }
    while (fgets(line, sizeof(line), f))
        printf("HAMEM: proc %s", line);
    fclose(f);
}

/* Runs one command line; returns 1 to quit. */
static int run(char *line)
{
    char cmd[32] = "", arg[256] = "", arg2[64] = "";
    line[strcspn(line, "\r\n")] = 0;
    if (sscanf(line, "%31s %255s %63s", cmd, arg, arg2) < 1)
        return 0;
    if (!strcmp(cmd, "meminfo"))
        printf("HAMEM: meminfo MemTotal %ld kB MemFree %ld kB\n", meminfo_kb("MemTotal"), meminfo_kb("MemFree"));
    else if (!strcmp(cmd, "alloc"))
        do_alloc(strtoul(arg, NULL, 10), 0);
    else if (!strcmp(cmd, "verify"))
        do_verify();
    else if (!strcmp(cmd, "free"))
        do_free(0);
    else if (!strcmp(cmd, "stress"))
        do_stress(strtod(arg, NULL), strtoul(arg2, NULL, 10));
    else if (!strcmp(cmd, "read"))
        do_read(arg);
    else if (!strcmp(cmd, "proc"))
        do_proc();
    else if (!strcmp(cmd, "sleep"))
        sleep((unsigned)strtoul(arg, NULL, 10));
    else if (!strcmp(cmd, "quit"))
        return 1;
    else {
        printf("HAMEM: error unknown command '%s'\n", cmd);
        fflush(stdout);
        return 0;
    }
    printf("HAMEM: ok %s (mismatches so far %llu)\n", cmd, total_mismatches);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("HAMEM: ready\n");
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            if (run(argv[i]))
                break;
    } else {
        char line[512];
        while (fgets(line, sizeof(line), stdin))
            if (run(line))
                break;
    }
    do_free(1);
    printf("HAMEM: exit, mismatches %llu\n", total_mismatches);
    return total_mismatches ? 1 : 0;
}
