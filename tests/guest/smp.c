/* SMP bring-up (CPL0) and the per-CPU check-in (CPL3).
 *
 * The BSP starts the APs one at a time with INIT, SIPI, SIPI through the xAPIC ICR
 * and waits until each has arrived, so the AP knows which MP table entry it was
 * started as (ap_current) and can cross-check its APIC ID against it. Delays are TSC
 * based and assume a TSC of at least ~1 GHz; they only need to be long enough. */
#include "guest.h"

#define LAPIC_ID 0x20
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define ICR_BUSY (1u << 12)
#define ICR_INIT 0x4500u        /* INIT, level assert */
#define ICR_STARTUP 0x4600u     /* Start-up IPI; low byte = vector (page number) */
#define ARRIVE_TIMEOUT_CYCLES 10000000000ull   /* several seconds */
#define CHECKIN_TIMEOUT_CYCLES 30000000000ull

uint64_t ap_boot_rsp;
static volatile unsigned ap_current;
static volatile unsigned checked_in;
static volatile unsigned failures;

static void delay_cycles(uint64_t cycles)
{
    uint64_t t0 = rdtsc();
    while (rdtsc() - t0 < cycles)
        cpu_relax();
}

static void send_ipi(uint8_t apic_id, uint32_t icr_low)
{
    mmio_write32(LAPIC_BASE + LAPIC_ICR_HIGH, (uint32_t)apic_id << 24);
    mmio_write32(LAPIC_BASE + LAPIC_ICR_LOW, icr_low);
    for (unsigned i = 0; i < 1000 && (mmio_read32(LAPIC_BASE + LAPIC_ICR_LOW) & ICR_BUSY); i++)
        cpu_relax();
}

static int wait_arrived(unsigned cpu, uint64_t cycles)
{
    uint64_t t0 = rdtsc();
    while (!g.cpus[cpu].arrived)
        if (rdtsc() - t0 > cycles)
            return 0;
    return 1;
}

static void start_ap(unsigned cpu)
{
    uint8_t apic = g.cpus[cpu].mp_apic_id;
    ap_current = cpu;
    ap_boot_rsp = kstack_top(cpu);
    send_ipi(apic, ICR_INIT);
    delay_cycles(10000000);     /* the MP spec's 10 ms (KVM needs none) */
    /* The spec's second SIPI covers a lost first one; skip it once the AP runs. */
    for (int sipi = 0; sipi < 2 && !g.cpus[cpu].arrived; sipi++) {
        send_ipi(apic, ICR_STARTUP | (TRAMPOLINE_BASE >> 12));
        wait_arrived(cpu, 2000000);
    }
    if (!wait_arrived(cpu, ARRIVE_TIMEOUT_CYCLES)) {
        kprintf("TESTGUEST: FAIL smp: cpu %u (apic %u) did not start\n", cpu, apic);
        g.smp_setup_failed = 1;
    }
}

void smp_start_aps(void)
{
    memcpy((void *)TRAMPOLINE_BASE, trampoline_start, (size_t)(trampoline_end - trampoline_start));
    for (unsigned cpu = 0; cpu < g.cpu_count && !g.smp_setup_failed; cpu++)
        if (cpu != g.bsp_index)
            start_ap(cpu);
}

/* AP, CPL0, on its kernel stack: load tables, record the LAPIC ID, drop to CPL3. */
void ap_setup(void)
{
    unsigned cpu = ap_current;
    cpu_load_tables(cpu);
    g.cpus[cpu].lapic_id_reg = (uint8_t)(mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24);
    __atomic_store_n(&g.cpus[cpu].arrived, 1, __ATOMIC_RELEASE);
    enter_user(g.run_aps && g.mode != MODE_SMP ? ap_user_main : smp_user, ustack_top(cpu), cpu);
}

static void check_id(unsigned cpu, const char *what, unsigned want, unsigned got)
{
    if (want == got)
        return;
    kprintf_unlocked("TESTGUEST: FAIL smp: cpu %u: CPUID APIC ID %u != %s %u\n", cpu, got, what, want);
    __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
}

/* Every CPU at CPL3. APs park afterwards; the BSP waits for all, then returns. */
void smp_user(unsigned cpu)
{
    if (g.cpu_count == 0)
        return;                 /* MP table unusable: FAIL already printed */
    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    unsigned apic = b >> 24;
    const struct cpu_info *ci = &g.cpus[cpu];
    console_lock();
    kprintf_unlocked("TESTGUEST: cpu %u apic %u\n", cpu, apic);
    check_id(cpu, "LAPIC ID register", ci->lapic_id_reg, apic);
    check_id(cpu, "MP table entry", ci->mp_apic_id, apic);
    console_unlock();
    __atomic_add_fetch(&checked_in, 1, __ATOMIC_RELEASE);
    if (cpu != g.bsp_index)
        ((void (*)(void))ap_park)();

    /* Wait only for the CPUs that did start (a FAIL line covers the others). */
    unsigned started = 0;
    for (unsigned i = 0; i < g.cpu_count; i++)
        started += i == g.bsp_index || g.cpus[i].arrived;
    uint64_t t0 = rdtsc();
    while (__atomic_load_n(&checked_in, __ATOMIC_ACQUIRE) < started &&
           rdtsc() - t0 < CHECKIN_TIMEOUT_CYCLES)
        cpu_relax();
    unsigned n = __atomic_load_n(&checked_in, __ATOMIC_ACQUIRE);
    if (n != g.cpu_count)
        kprintf("TESTGUEST: FAIL smp: only %u of %u cpus checked in\n", n, g.cpu_count);
    else if (failures || g.smp_setup_failed)
        kprintf("TESTGUEST: FAIL smp: %u mismatches\n", failures);
    else
        kprintf("TESTGUEST: smp ok %u cpus\n", n);
}
