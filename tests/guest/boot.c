/* CPL0 setup of the bootstrap processor: everything that needs privilege, kept short
 * because every CPL0 instruction is emulated on nested hosts (~0.3 us each).
 *
 * Entered from entry.S with our own stack and a zeroed .bss. Reads the zero page
 * (command line, e820) before touching any low memory, builds an identity map WITH the
 * U bit (the VMM's map lacks it, so CPL3 could not touch anything), loads our GDT
 * (user segments + one TSS per CPU), IDT and TSS, and drops to CPL3 with IOPL=3. */
#include "guest.h"

#define BP_E820_ENTRIES 0x1e8   /* u8  in struct boot_params */
#define BP_CMD_LINE_PTR 0x228   /* u32 */
#define BP_E820_TABLE 0x2d0     /* struct boot_e820_entry[128] */

#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_PWT 0x8ull
#define PTE_PCD 0x10ull
#define PTE_PS 0x80ull
#define GIB (1ull << 30)

#define KSTACK_SIZE 8192
#define USTACK_SIZE 16384

struct guest_state g;
volatile int g_expect_ud;

/* pml4 is global: the AP trampoline loads it into CR3 by absolute address. */
uint64_t pml4[512] __attribute__((aligned(4096)));
static uint64_t pdpt[512] __attribute__((aligned(4096)));
/* Only used without 1 GiB pages; every entry of a used directory is written. */
static uint64_t pds[MAX_MAPPED_GIB][512] __attribute__((aligned(4096))) NOCLEAR;
static uint8_t kstacks[MAX_CPUS][KSTACK_SIZE] __attribute__((aligned(16))) NOCLEAR;
static uint8_t ustacks[MAX_CPUS][USTACK_SIZE] __attribute__((aligned(16))) NOCLEAR;

struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
    /* I/O permission bitmap for ports 0-0x3ff (all allowed) plus the terminating
     * 0xff byte. IOPL=3 alone is not enough everywhere: kvm_pvm runs guest user mode
     * at hardware IOPL 0 and emulates in/out only if this bitmap allows the port. */
    uint8_t io_bitmap[0x400 / 8 + 1];
} __attribute__((packed));

struct idt_gate {
    uint16_t offset_low, selector;
    uint8_t ist, type_attr;
    uint16_t offset_mid;
    uint32_t offset_high, zero;
} __attribute__((packed));

struct dtr {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

/* 0x08 kernel code, 0x10 kernel data, 0x18 user code, 0x20 user data, then one
 * 16-byte TSS descriptor per CPU (a TSS is marked busy when loaded, so each CPU
 * needs its own descriptor). */
static uint64_t gdt[5 + 2 * MAX_CPUS] __attribute__((aligned(16)));
static struct tss64 tss[MAX_CPUS] __attribute__((aligned(16)));
static struct idt_gate idt[32] __attribute__((aligned(16)));

uint64_t kstack_top(unsigned cpu) { return (uint64_t)&kstacks[cpu][KSTACK_SIZE]; }
/* -8: the user entry point is reached by iretq, not call, yet expects the ABI's
 * "return address pushed" alignment (rsp % 16 == 8). */
uint64_t ustack_top(unsigned cpu) { return (uint64_t)&ustacks[cpu][USTACK_SIZE] - 8; }

/* The command line is only scanned for the mode (not copied: every CPL0 byte
 * costs); the e820 table is copied because the workloads use it at CPL3. */
static const char *read_zero_page(uint64_t bp)
{
    uint32_t cmd = *(volatile uint32_t *)(bp + BP_CMD_LINE_PTR);
    unsigned n = *(volatile uint8_t *)(bp + BP_E820_ENTRIES);
    g.e820_count = n > MAX_E820 ? MAX_E820 : n;
    memcpy(g.e820, (const void *)(bp + BP_E820_TABLE), g.e820_count * sizeof(struct e820_entry));
    return cmd ? (const char *)(uint64_t)cmd : "";
}

static const struct { const char *name; enum guest_mode mode; } mode_names[] = {
    { "compute", MODE_COMPUTE }, { "smp", MODE_SMP }, { "memory", MODE_MEMORY },
    { "triple-fault", MODE_TRIPLE_FAULT }, { "exception", MODE_EXCEPTION }, { "counter", MODE_COUNTER },
};

/* Value of the first whole-word "<key><value>" option, its length in *len. */
static const char *find_option(const char *cmdline, const char *key, size_t *len)
{
    size_t key_len = strnlen(key, 64);
    for (size_t i = 0; i < CMDLINE_MAX && cmdline[i]; i++) {
        if ((i == 0 || cmdline[i - 1] == ' ') && str_starts(cmdline + i, key)) {
            const char *val = cmdline + i + key_len;
            for (*len = 0; val[*len] && val[*len] != ' ' && *len < CMDLINE_MAX; ++*len)
                ;
            return val;
        }
    }
    return 0;
}

/* testguest.mode=<name> (default compute); testguest.pages=2m forces 2 MiB pages. */
static void parse_cmdline(const char *cmdline)
{
    size_t len = 7;
    const char *val = find_option(cmdline, "testguest.mode=", &len);
    if (!val) {
        val = "compute";
        len = 7;
    }
    if (len >= sizeof(g.mode_name))
        len = sizeof(g.mode_name) - 1;
    memcpy(g.mode_name, val, len);
    g.mode_name[len] = 0;
    g.mode = MODE_UNKNOWN;
    for (unsigned i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
        if (strnlen(mode_names[i].name, 32) == len && !memcmp(mode_names[i].name, val, len))
            g.mode = mode_names[i].mode;

    size_t plen;
    const char *pages = find_option(cmdline, "testguest.pages=", &plen);
    uint32_t a, b, c, d;
    cpuid(0x80000000, &a, &b, &c, &d);
    int has_1g = 0;
    if (a >= 0x80000001) {
        cpuid(0x80000001, &a, &b, &c, &d);
        has_1g = (d >> 26) & 1;   /* Page1GB */
    }
    g.huge_pages = has_1g && !(pages && plen == 2 && !memcmp(pages, "2m", 2));
    const char *smp = find_option(cmdline, "testguest.smp=", &plen);
    g.run_aps = smp && plen == 1 && smp[0] == '1';
}

/* Identity map [0, max(4 GiB, end of RAM)), user-accessible, with 1 GiB pages
 * where the CPU offers them (a handful of emulated stores), else 2 MiB pages
 * (kvm_pvm's shadow paging offers no 1 GiB pages: 2048+ stores, ~50 ms there).
 * The MMIO hole (3-4 GiB: LAPIC, IOAPIC, device windows) is uncached. */
static void build_page_tables(void)
{
    uint64_t ram_end = 0;
    for (unsigned i = 0; i < g.e820_count; i++)
        if (g.e820[i].type == 1 && g.e820[i].addr + g.e820[i].size > ram_end)
            ram_end = g.e820[i].addr + g.e820[i].size;
    g.ram_end = ram_end;
    uint64_t gibs = (ram_end + GIB - 1) / GIB;
    if (gibs < 4)
        gibs = 4;
    if (gibs > MAX_MAPPED_GIB)
        gibs = MAX_MAPPED_GIB;
    g.mapped_limit = gibs * GIB;

    const uint64_t flags = PTE_P | PTE_RW | PTE_US;
    for (uint64_t gi = 0; gi < gibs; gi++) {
        uint64_t cache = gi == 3 ? PTE_PCD | PTE_PWT : 0;
        if (g.huge_pages) {
            pdpt[gi] = (gi * GIB) | flags | PTE_PS | cache;
            continue;
        }
        for (uint64_t i = 0; i < 512; i++)
            pds[gi][i] = (gi * GIB + (i << 21)) | flags | PTE_PS | cache;
        pdpt[gi] = (uint64_t)pds[gi] | flags;
    }
    pml4[0] = (uint64_t)pdpt | flags;

    /* Supervisor code runs from user pages: SMEP/SMAP/PKE would fault on that, and
     * TSD would stop rdtsc at CPL3. Clear them if the VMM set them. */
    uint64_t cr4;
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    uint64_t clear = (1ull << 2) | (1ull << 20) | (1ull << 21) | (1ull << 22);
    if (cr4 & clear)
        __asm__ volatile("mov %0, %%cr4" ::"r"(cr4 & ~clear));
    __asm__ volatile("mov %0, %%cr3" ::"r"((uint64_t)pml4) : "memory");
}

static void build_descriptor_tables(void)
{
    gdt[1] = 0x00af9a000000ffffull;   /* kernel code64, DPL0 */
    gdt[2] = 0x00cf92000000ffffull;   /* kernel data */
    gdt[3] = 0x00affa000000ffffull;   /* user code64, DPL3 */
    gdt[4] = 0x00cff2000000ffffull;   /* user data, DPL3 */
    for (unsigned c = 0; c < MAX_CPUS; c++) {
        uint64_t base = (uint64_t)&tss[c], limit = sizeof(struct tss64) - 1;
        tss[c].rsp[0] = kstack_top(c);           /* stack for exceptions from CPL3 */
        tss[c].iomap_base = offsetof(struct tss64, io_bitmap);
        tss[c].io_bitmap[sizeof(tss[c].io_bitmap) - 1] = 0xff;
        gdt[5 + 2 * c] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
                         (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
        gdt[6 + 2 * c] = base >> 32;
    }
    for (unsigned v = 0; v < 32; v++) {
        uint64_t h = isr_table[v];
        idt[v] = (struct idt_gate){ .offset_low = (uint16_t)h, .selector = KERNEL_CS,
                                    .type_attr = 0x8e, /* present 64-bit interrupt gate */
                                    .offset_mid = (uint16_t)(h >> 16),
                                    .offset_high = (uint32_t)(h >> 32) };
    }
}

/* Loads the shared GDT/IDT and this CPU's TSS; reloads CS with a far return. */
void cpu_load_tables(unsigned cpu)
{
    struct dtr gd = { sizeof(gdt) - 1, (uint64_t)gdt };
    struct dtr id = { sizeof(idt) - 1, (uint64_t)idt };
    __asm__ volatile("lgdt %0\n\tlidt %1" ::"m"(gd), "m"(id) : "memory");
    __asm__ volatile("pushq %[cs]\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "lretq\n"
                     "1:\n\t"
                     "movl %[ds], %%eax\n\t"
                     "movl %%eax, %%ds\n\tmovl %%eax, %%es\n\tmovl %%eax, %%ss\n\t"
                     "xorl %%eax, %%eax\n\tmovl %%eax, %%fs\n\tmovl %%eax, %%gs"
                     ::[cs] "i"(KERNEL_CS), [ds] "i"(KERNEL_DS) : "rax", "memory");
    __asm__ volatile("ltr %w0" ::"r"((uint16_t)TSS_SEL(cpu)));
}

static __attribute__((noreturn)) void triple_fault(void)
{
    struct dtr empty = { 0, 0 };
    kprintf("TESTGUEST: triple-fault: loading an empty IDT and executing ud2 at CPL0\n");
    /* #UD cannot be delivered -> #GP -> #DF -> shutdown: the VMM must report it. */
    __asm__ volatile("lidt %0\n\tud2" ::"m"(empty));
    for (;;)
        ;
}

void bsp_setup(uint64_t boot_params)
{
    parse_cmdline(read_zero_page(boot_params));
    outb(0x80, PROGRESS_ZERO_PAGE_READ);
    kprintf("TESTGUEST: mode %s\n", g.mode_name);
    if (g.mode == MODE_TRIPLE_FAULT)
        triple_fault();

    build_page_tables();
    outb(0x80, PROGRESS_PAGING);
    unsigned bsp = 0;
    int start_aps = g.mode == MODE_SMP || g.run_aps;
    if (start_aps && mptable_parse() == 0)
        bsp = g.bsp_index;
    build_descriptor_tables();
    cpu_load_tables(bsp);
    outb(0x80, PROGRESS_TABLES);
    if (start_aps && !g.smp_setup_failed) {
        g.cpus[bsp].lapic_id_reg = (uint8_t)(mmio_read32(LAPIC_BASE + 0x20) >> 24);
        smp_start_aps();
        outb(0x80, PROGRESS_APS_STARTED);
    }
    enter_user(user_main, ustack_top(bsp), bsp);
}

/* Every exception is fatal (printed, then machine reset), with two deliberate ones:
 * an AP parking itself with 'hlt' at CPL3 (#GP), and the exception mode's ud2. */
void exception_handler(struct exception_frame *f)
{
    if (f->vector == 13 && f->rip == (uint64_t)ap_park)
        for (;;)
            __asm__ volatile("cli; hlt");
    /* Bounded: the faulting CPU may itself hold the console lock. */
    console_trylock(10000000);
    if (f->vector == 6 && g_expect_ud && (f->cs & 3) == 3) {
        kprintf_unlocked("TESTGUEST: exception ok: #UD from CPL3 at rip 0x%lx delivered on the TSS stack 0x%lx\n",
                         f->rip, (uint64_t)f);
        kprintf_unlocked("TESTGUEST: done\n");
        outb(0x80, PROGRESS_DONE);
        machine_reset();
    }
    kprintf_unlocked("TESTGUEST: FAIL exception %lu at rip 0x%lx err 0x%lx cpl %lu rsp 0x%lx rflags 0x%lx",
                     f->vector, f->rip, f->error_code, f->cs & 3, f->rsp, f->rflags);
    if (f->vector == 14) {
        uint64_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        kprintf_unlocked(" cr2 0x%lx", cr2);
    }
    kprintf_unlocked("\n");
    machine_reset();
}
