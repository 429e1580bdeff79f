/* AP start-up trampoline. The BSP copies the bytes between trampoline_start and
 * trampoline_end to TRAMPOLINE_BASE (0x10000) and sends SIPI vector 0x10, so an AP
 * begins here in 16-bit real mode with CS=0x1000, IP=0. It goes real -> 32-bit
 * protected -> 64-bit long mode and jumps to ap_entry64 in the image. Every
 * instruction here is emulated on nested hosts, hence as few as possible. */
#define TRAMPOLINE_BASE 0x10000
#define REL(x) ((x) - trampoline_start)
#define ABS(x) (TRAMPOLINE_BASE + (x) - trampoline_start)

    .section .rodata.trampoline, "a"
    .globl trampoline_start, trampoline_end
    .code16
trampoline_start:
    cli
    movw %cs, %ax
    movw %ax, %ds                   /* lgdt's operand is DS-relative */
    lgdtl REL(tramp_gdtr)
    movl $0x11, %eax                /* PE | ET */
    movl %eax, %cr0
    ljmpl $0x08, $ABS(tramp_pm32)

    .code32
tramp_pm32:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl $0x20, %eax                /* CR4.PAE (nothing else: no SMEP/SMAP/TSD) */
    movl %eax, %cr4
    movl $pml4, %eax                /* the BSP's tables (in the image, below 4 GiB) */
    movl %eax, %cr3
    movl $0xc0000080, %ecx          /* EFER.LME */
    rdmsr
    orl $0x100, %eax
    wrmsr
    /* PG|WP|NE|ET|MP|PE: paging on activates long mode. Writing the whole value
     * also clears CD/NW, which INIT leaves set (caches off). */
    movl $0x80010033, %eax
    movl %eax, %cr0
    ljmpl $0x18, $ap_entry64        /* 64-bit code selector, absolute target */

    .p2align 3
tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08: 32-bit flat code */
    .quad 0x00cf92000000ffff        /* 0x10: flat data */
    .quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
tramp_gdtr:
    .word tramp_gdtr - tramp_gdt - 1
    .long ABS(tramp_gdt)
trampoline_end:

    .section .note.GNU-stack, "", @progbits
