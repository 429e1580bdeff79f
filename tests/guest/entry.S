/* Entry points of the test guest: the BSP's 64-bit entry (Linux 64-bit boot
 * protocol), the APs' 64-bit entry (reached from trampoline.S), the drop to CPL3,
 * and the exception stubs. All of it runs at CPL0, so it is kept minimal. */
#define USER_CS (0x18 | 3)
#define USER_DS (0x20 | 3)

    .section .text.entry, "ax"
    .code64
    .globl _start
_start:
    /* Boot-progress code 0x01 as early as possible (AL must be loaded first). */
    movb $0x01, %al
    outb %al, $0x80
    movq %rsi, %rbx                 /* struct boot_params (zero page) */
    /* Zero .bss: the loader is not required to, and the state lives there. Stacks
     * and the large page-directory array sit in .bss.noclear instead: rep stosq is
     * emulated at ~1 us per qword here, and they need no zeroing. */
    leaq __bss_start(%rip), %rdi
    leaq __bss_end(%rip), %rcx
    subq %rdi, %rcx
    shrq $3, %rcx
    xorl %eax, %eax
    cld
    rep stosq
    movb $0x10, %al                 /* progress: .bss cleared */
    outb %al, $0x80
    /* Leave the VMM's stack (0x8ff0 is in pages we do not own yet). */
    leaq bsp_boot_stack_top(%rip), %rsp
    movq %rbx, %rdi
    call bsp_setup                  /* never returns: ends in enter_user */
1:  hlt
    jmp 1b

    .text
/* APs arrive here from the trampoline in 64-bit mode, CPL0, on our page tables,
 * with CS from the trampoline's GDT. The BSP starts them one at a time and leaves
 * the stack to use in ap_boot_rsp. */
    .globl ap_entry64
ap_entry64:
    movq ap_boot_rsp(%rip), %rsp
    call ap_setup                   /* never returns */
1:  hlt
    jmp 1b

/* enter_user(fn, user_rsp, arg): iretq to fn(arg) at CPL3 with IOPL=3 (port I/O for
 * the UART and the reset port) and interrupts off. */
    .globl enter_user
enter_user:
    movl $USER_DS, %eax
    movl %eax, %ds
    movl %eax, %es
    pushq $USER_DS                  /* ss */
    pushq %rsi                      /* rsp */
    pushq $0x3002                   /* rflags: IOPL=3, IF=0, bit 1 reserved-set */
    pushq $USER_CS                  /* cs */
    pushq %rdi                      /* rip */
    movl %edx, %edi
    iretq

/* Run at CPL3 by an AP that is finished: 'hlt' is privileged there, so it raises
 * #GP, and the handler parks the CPU at CPL0 with cli;hlt instead of spinning
 * (spinning vCPUs would steal the host's few cores from the BSP). */
    .globl ap_park
ap_park:
    hlt
    jmp ap_park

/* Exception stubs: make every frame look alike (dummy error code where the CPU
 * pushes none), then save the GPRs as struct exception_frame. */
.macro ISR_NOERR n
isr\n:
    pushq $0
    pushq $\n
    jmp isr_common
.endm
.macro ISR_ERR n
isr\n:
    pushq $\n
    jmp isr_common
.endm

ISR_NOERR 0
ISR_NOERR 1
ISR_NOERR 2
ISR_NOERR 3
ISR_NOERR 4
ISR_NOERR 5
ISR_NOERR 6
ISR_NOERR 7
ISR_ERR   8
ISR_NOERR 9
ISR_ERR   10
ISR_ERR   11
ISR_ERR   12
ISR_ERR   13
ISR_ERR   14
ISR_NOERR 15
ISR_NOERR 16
ISR_ERR   17
ISR_NOERR 18
ISR_NOERR 19
ISR_NOERR 20
ISR_ERR   21
ISR_NOERR 22
ISR_NOERR 23
ISR_NOERR 24
ISR_NOERR 25
ISR_NOERR 26
ISR_NOERR 27
ISR_NOERR 28
ISR_ERR   29
ISR_ERR   30
ISR_NOERR 31

isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    andq $-16, %rsp
    call exception_handler          /* never returns */
1:  hlt
    jmp 1b

    .section .rodata
    .p2align 3
    .globl isr_table
isr_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad isr\n
    .endr

    .section .bss.noclear, "aw", @nobits
    .p2align 4
bsp_boot_stack:
    .skip 16384
bsp_boot_stack_top:

    .section .note.GNU-stack, "", @progbits
