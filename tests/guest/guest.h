/* Shared declarations of the freestanding test guest (see docs/test-guest.md).
 *
 * The guest runs in two privilege levels: CPL0 code (boot.c, smp.c's bring-up, the
 * exception handler) only prepares the machine, because on nested hosts every CPL0
 * instruction is emulated (~0.3 us each); every workload runs at CPL3, natively. */
#ifndef TEST_GUEST_H
#define TEST_GUEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_CPUS 16
#define MAX_E820 128
#define CMDLINE_MAX 2048            /* x86 COMMAND_LINE_SIZE, NUL included */
#define NOCLEAR __attribute__((section(".bss.noclear")))
#define MAX_MAPPED_GIB 32            /* identity map covers at most this much */

#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_CS (0x18 | 3)
#define USER_DS (0x20 | 3)
#define TSS_SEL(cpu) (0x28 + 16 * (cpu))

#define TRAMPOLINE_BASE 0x10000      /* AP start page: SIPI vector 0x10 */
#define LAPIC_BASE 0xfee00000ull
#define GUEST_IMAGE_END 0x200000ull  /* link.ld asserts the image ends below this */
/* counter mode: the BSP stores an ever-increasing 64-bit count here (8-byte aligned,
 * a plain store is atomic), for the host to read. Above the image (which ends near
 * 0x18e000), below GUEST_IMAGE_END, and not used by the VMM's boot data. */
#define COUNTER_ADDR 0x1f0000ull

/* Boot-progress codes written to port 0x80; the VMM logs each with a timestamp,
 * which shows where (emulated) CPL0 time goes. */
enum progress {
    PROGRESS_ENTRY = 0x01, PROGRESS_CPL3 = 0x02, PROGRESS_DONE = 0x03,
    PROGRESS_BSS_CLEARED = 0x10, PROGRESS_ZERO_PAGE_READ = 0x11, PROGRESS_PAGING = 0x12,
    PROGRESS_TABLES = 0x13, PROGRESS_APS_STARTED = 0x14,
};

enum guest_mode { MODE_COMPUTE, MODE_SMP, MODE_MEMORY, MODE_TRIPLE_FAULT, MODE_EXCEPTION, MODE_COUNTER,
                  MODE_UNKNOWN };

struct e820_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} __attribute__((packed));

struct cpu_info {
    uint8_t mp_apic_id;        /* from the MP table processor entry */
    uint8_t is_bsp;            /* MP table flag */
    uint8_t lapic_id_reg;      /* LAPIC ID register, read at CPL0 by that CPU */
    volatile uint8_t arrived;  /* AP reached 64-bit CPL0 and is about to drop */
};

/* Everything the CPL0 setup learns and the CPL3 workloads use. */
struct guest_state {
    enum guest_mode mode;
    char mode_name[32];
    struct e820_entry e820[MAX_E820];
    unsigned e820_count;
    uint64_t ram_end; /* end of the highest e820 RAM range (set with the page tables) */
    uint64_t mapped_limit;      /* identity map covers [0, mapped_limit) with U set */
    int huge_pages;             /* 1 GiB pages (else 2 MiB) */
    unsigned cpu_count;         /* enabled processors in the MP table */
    unsigned bsp_index;
    struct cpu_info cpus[MAX_CPUS];
    int smp_setup_failed;       /* a FAIL line was already printed at CPL0 */
    int run_aps;                /* testguest.smp=1: start the APs in any mode (ap_user_main) */
};
extern struct guest_state g;

/* Frame built by the interrupt stubs in entry.S (lowest address first). */
struct exception_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss;
};

/* ---- port I/O, MSRs, TSC: tiny inline helpers ---- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}
static inline uint32_t mmio_read32(uint64_t addr) { return *(volatile uint32_t *)addr; }
static inline void mmio_write32(uint64_t addr, uint32_t v) { *(volatile uint32_t *)addr = v; }

/* ---- lib.c ---- */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strnlen(const char *s, size_t max);
int str_starts(const char *s, const char *prefix);

/* ---- console.c: 8250 output, serialized by a spinlock across CPUs ---- */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char *fmt, va_list ap);
void console_lock(void);
int console_trylock(unsigned long spins);
void console_unlock(void);
void kputs_unlocked(const char *s);
void kprintf_unlocked(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__attribute__((noreturn)) void machine_reset(void);

/* ---- boot.c (CPL0) ---- */
void bsp_setup(uint64_t boot_params);
void cpu_load_tables(unsigned cpu);
void exception_handler(struct exception_frame *f);
uint64_t kstack_top(unsigned cpu);
uint64_t ustack_top(unsigned cpu);
extern uint64_t pml4[512];

/* ---- mptable.c (CPL0) ---- */
int mptable_parse(void);   /* fills g.cpus/g.cpu_count; 0 = ok, prints FAIL otherwise */

/* ---- smp.c ---- */
void smp_start_aps(void);               /* CPL0, BSP */
void ap_setup(void);                    /* CPL0, AP (called from entry.S) */
void smp_user(unsigned cpu);            /* CPL3, every CPU */

/* ---- workloads.c (CPL3) ---- */
void run_compute(void);
void run_memory(void);
void run_exception(void);
__attribute__((noreturn)) void run_counter(void);

/* ---- virtio_modes.c (CPL3): the virtio-* modes; 0 if `name` is not one ---- */
int run_virtio_mode(const char *name);
/* ---- hyperalloc_modes.c (CPL3): the hyperalloc* modes; 0 if `name` is not one ---- */
int run_hyperalloc_mode(const char *name);
int run_hyperalloc_ap(const char *name, unsigned cpu);   /* an AP's part; 0 if none */
/* pci_mode.c: the PCI/VFIO end-to-end mode; 0 if `name` is not "pci" */
int run_pci_mode(const char *name);

/* ---- main.c (CPL3) ---- */
void user_main(unsigned cpu);
void ap_user_main(unsigned cpu);        /* APs started by testguest.smp=1 */

/* ---- entry.S ---- */
__attribute__((noreturn)) void enter_user(void (*fn)(unsigned), uint64_t user_rsp, unsigned arg);
extern const uint64_t isr_table[32];
extern char ap_park[];                  /* CPL3 'hlt': #GP there parks the AP */
extern char trampoline_start[], trampoline_end[];
extern uint64_t ap_boot_rsp;            /* kernel stack the next AP starts on */
extern volatile int g_expect_ud;        /* exception mode: a #UD at CPL3 is the test */

#endif
