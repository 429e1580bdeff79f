/* First code at CPL3 on the BSP: dispatch on the mode chosen by bsp_setup. */
#include "guest.h"

/* An AP started because of testguest.smp=1: the mode's per-CPU part, if it has one;
 * then (or else) the AP parks. */
void ap_user_main(unsigned cpu)
{
    run_hyperalloc_ap(g.mode_name, cpu);
    ((void (*)(void))ap_park)();
}

void user_main(unsigned cpu)
{
    outb(0x80, PROGRESS_CPL3);
    switch (g.mode) {
    case MODE_COMPUTE:
        run_compute();
        break;
    case MODE_SMP:
        smp_user(cpu);
        break;
    case MODE_MEMORY:
        run_memory();
        break;
    case MODE_EXCEPTION:
        run_exception();
        break;
    case MODE_COUNTER:
        run_counter();   /* never returns: the host ends the VM */
    default:
        if (run_virtio_mode(g.mode_name))   /* virtio-* modes: virtio_modes.c */
            break;
        if (run_hyperalloc_mode(g.mode_name))   /* hyperalloc* modes: hyperalloc_modes.c */
            break;
        if (run_pci_mode(g.mode_name))          /* pci: pci_mode.c */
            break;
        kprintf("TESTGUEST: FAIL unknown mode '%s' (compute, smp, memory, triple-fault, exception, counter, virtio-*, "
                "hyperalloc*, pci)\n", g.mode_name);
        break;
    }
    kprintf("TESTGUEST: done\n");
    outb(0x80, PROGRESS_DONE);
    machine_reset();
}
