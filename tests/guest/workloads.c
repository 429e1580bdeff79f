/* The CPL3 workloads (native speed even on nested hosts). Each checks its result
 * against a value that does not come from the same code path: the prime count is
 * fixed by mathematics, the CRC32 check value "123456789" -> 0xcbf43926 is fixed by
 * the standard, and two different CRC algorithms must agree on a generated buffer. */
#include "guest.h"

#define MIB (1ul << 20)
#define SIEVE_LIMIT 10000000u
#define PRIMES_BELOW_LIMIT 664579u       /* pi(10^7) */
#define SCRATCH_BASE (4 * MIB)           /* above the image; checked against e820 */
#define SIEVE_BYTES (SIEVE_LIMIT / 2)
#define CRC_BUF (SCRATCH_BASE + 8 * MIB)
#define CRC_BYTES MIB

static uint32_t crc_table[8][256];

static int ram_covers(uint64_t start, uint64_t len)
{
    for (unsigned i = 0; i < g.e820_count; i++)
        if (g.e820[i].type == 1 && g.e820[i].addr <= start &&
            start + len <= g.e820[i].addr + g.e820[i].size && start + len <= g.mapped_limit)
            return 1;
    return 0;
}

/* Odd-only sieve of Eratosthenes: byte i stands for 2i+1. */
static unsigned count_primes(uint8_t *composite)
{
    memset(composite, 0, SIEVE_BYTES);
    for (uint64_t i = 1; (2 * i + 1) * (2 * i + 1) < SIEVE_LIMIT; i++) {
        if (composite[i])
            continue;
        uint64_t p = 2 * i + 1;
        for (uint64_t j = p * p / 2; j < SIEVE_BYTES; j += p)
            composite[j] = 1;
    }
    unsigned count = 1;                  /* 2 */
    for (uint64_t i = 1; i < SIEVE_BYTES; i++)
        count += !composite[i];
    return count;
}

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int t = 1; t < 8; t++)
            crc_table[t][n] = (crc_table[t - 1][n] >> 8) ^ crc_table[0][crc_table[t - 1][n] & 0xff];
}

static uint32_t crc32_bytewise(const uint8_t *p, size_t n)
{
    uint32_t c = ~0u;
    while (n--)
        c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

/* Slicing-by-8: eight table lookups per 8 input bytes (little-endian loads). */
static uint32_t crc32_slicing8(const uint8_t *p, size_t n)
{
    uint32_t c = ~0u;
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff] ^
            crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
    }
    while (n--)
        c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

void run_compute(void)
{
    if (!ram_covers(SCRATCH_BASE, 8 * MIB + CRC_BYTES)) {
        kprintf("TESTGUEST: FAIL compute: no RAM at 0x%lx-0x%lx (needs >= 16 MiB)\n",
                (uint64_t)SCRATCH_BASE, (uint64_t)(CRC_BUF + CRC_BYTES));
        return;
    }
    uint64_t t0 = rdtsc();
    unsigned primes = count_primes((uint8_t *)SCRATCH_BASE);
    uint64_t t1 = rdtsc();

    crc_init();
    static const char check[] = "123456789";
    uint32_t chk_a = crc32_bytewise((const uint8_t *)check, 9);
    uint32_t chk_b = crc32_slicing8((const uint8_t *)check, 9);
    uint8_t *buf = (uint8_t *)CRC_BUF;
    uint64_t x = 0x243f6a8885a308d3ull;  /* xorshift64 */
    for (size_t i = 0; i < CRC_BYTES; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    uint64_t t2 = rdtsc();
    uint32_t crc_a = crc32_bytewise(buf, CRC_BYTES);
    uint64_t t3 = rdtsc();
    uint32_t crc_b = crc32_slicing8(buf, CRC_BYTES);
    uint64_t t4 = rdtsc();

    if (primes != PRIMES_BELOW_LIMIT || chk_a != 0xcbf43926u || chk_b != 0xcbf43926u || crc_a != crc_b) {
        kprintf("TESTGUEST: FAIL compute primes %u (want %u) crc32 check 0x%x/0x%x (want 0xcbf43926) "
                "buffer crc32 bytewise 0x%x slicing-by-8 0x%x\n",
                primes, PRIMES_BELOW_LIMIT, chk_a, chk_b, crc_a, crc_b);
        return;
    }
    kprintf("TESTGUEST: compute ok primes below %u: %u (sieve %lu cycles); crc32 of 1 MiB 0x%08x "
            "(bytewise %lu cycles, slicing-by-8 %lu cycles)\n",
            SIEVE_LIMIT, primes, t1 - t0, crc_a, t3 - t2, t4 - t3);
}

/* A value every qword can be checked against, different for every address. */
static inline uint64_t pattern(uint64_t addr) { return (addr * 0x9e3779b97f4a7c15ull) ^ 0xa5a5a5a55a5a5a5aull; }

/* Clip e820 RAM range i to what the test may overwrite: above the image (2 MiB),
 * inside the identity map, whole 4 KiB pages. */
static int test_range(unsigned i, uint64_t *start, uint64_t *end)
{
    if (g.e820[i].type != 1)
        return 0;
    uint64_t s = g.e820[i].addr, e = s + g.e820[i].size;
    if (s < GUEST_IMAGE_END)
        s = GUEST_IMAGE_END;
    if (e > g.mapped_limit)
        e = g.mapped_limit;
    s = (s + 4095) & ~4095ull;
    e &= ~4095ull;
    *start = s;
    *end = e;
    return e > s;
}

void run_memory(void)
{
    uint64_t bytes = 0, s, e, t0 = rdtsc();
    unsigned ranges = 0;
    for (unsigned i = 0; i < g.e820_count; i++) {
        if (!test_range(i, &s, &e))
            continue;
        for (uint64_t a = s; a < e; a += 8)
            *(uint64_t *)a = pattern(a);
        bytes += e - s;
        ranges++;
    }
    uint64_t t1 = rdtsc();
    /* Verify only after everything is written, so aliased pages are caught too. */
    for (unsigned i = 0; i < g.e820_count; i++) {
        if (!test_range(i, &s, &e))
            continue;
        for (uint64_t a = s; a < e; a += 8) {
            uint64_t got = *(volatile uint64_t *)a;
            if (got != pattern(a)) {
                kprintf("TESTGUEST: FAIL memory at 0x%lx: read 0x%lx, wrote 0x%lx\n", a, got, pattern(a));
                return;
            }
        }
    }
    uint64_t t2 = rdtsc();
    if (ranges == 0) {
        kprintf("TESTGUEST: FAIL memory: no RAM above 2 MiB in the e820 map\n");
        return;
    }
    kprintf("TESTGUEST: memory ok %lu MiB in %u ranges (write %lu cycles, verify %lu cycles)\n",
            bytes / MIB, ranges, t1 - t0, t2 - t1);
}

/* The one deliberate exception from CPL3: the handler reports it and ends the run. */
void run_exception(void)
{
    g_expect_ud = 1;
    __asm__ volatile("ud2");
    kprintf("TESTGUEST: FAIL exception: ud2 at CPL3 did not trap\n");
}

/* For the host's pause/resume tests: an endless count at CPL3 that the host reads
 * from guest memory. It stops exactly while the vCPU is paused; the host ends the VM.
 * Only the BSP counts; other vCPUs are never started and stay in wait-for-SIPI. */
void run_counter(void)
{
    extern char _end[];   /* link.ld: end of the image, .bss and stacks included */
    volatile uint64_t *counter = (volatile uint64_t *)COUNTER_ADDR;
    if ((uint64_t)_end > COUNTER_ADDR || !ram_covers(COUNTER_ADDR, sizeof(*counter))) {
        kprintf("TESTGUEST: FAIL counter: 0x%lx overlaps the image (ends 0x%lx) or is not RAM\n",
                (uint64_t)COUNTER_ADDR, (uint64_t)_end);
        machine_reset();
    }
    uint64_t n = 0;
    __atomic_store_n(counter, n, __ATOMIC_RELEASE);
    kprintf("TESTGUEST: counter running at 0x%lx\n", (uint64_t)COUNTER_ADDR);
    for (;;)
        __atomic_store_n(counter, ++n, __ATOMIC_RELEASE);
}
