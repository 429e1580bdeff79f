/* Console: polled 8250 transmitter at 0x3f8 and a minimal printf.
 *
 * Works at CPL0 and at CPL3 (user code runs with RFLAGS.IOPL=3, so in/out are
 * allowed). Output from several CPUs is serialized with a test-and-set spinlock so
 * lines never interleave. */
#include "guest.h"

#define COM1 0x3f8
#define LSR_THRE 0x20

static volatile uint32_t console_locked;

static void uart_putc(char c)
{
    /* Bounded: a missing or stuck UART must not hang the guest forever. */
    for (unsigned spins = 0; spins < 100000; spins++)
        if (inb(COM1 + 5) & LSR_THRE)
            break;
    outb(COM1, (uint8_t)c);
}

void console_lock(void)
{
    while (__atomic_exchange_n(&console_locked, 1, __ATOMIC_ACQUIRE))
        while (console_locked)
            cpu_relax();
}

int console_trylock(unsigned long spins)
{
    while (__atomic_exchange_n(&console_locked, 1, __ATOMIC_ACQUIRE)) {
        if (spins-- == 0)
            return 0;
        cpu_relax();
    }
    return 1;
}

void console_unlock(void) { __atomic_store_n(&console_locked, 0, __ATOMIC_RELEASE); }

void kputs_unlocked(const char *s)
{
    while (*s)
        uart_putc(*s++);
}

static void put_uint(uint64_t v, unsigned base, int min_digits)
{
    char buf[24];
    int n = 0;
    do {
        unsigned d = (unsigned)(v % base);
        buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v && n < (int)sizeof(buf));
    while (n < min_digits && n < (int)sizeof(buf))
        buf[n++] = '0';
    while (n)
        uart_putc(buf[--n]);
}

/* Supports %s %c %d %u %x %p and the l/ll modifiers, plus a 0-padded width for %x. */
void kvprintf(const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            uart_putc(*fmt);
            continue;
        }
        fmt++;
        int width = 0;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        int is_long = 0;
        while (*fmt == 'l') {
            is_long = 1;
            fmt++;
        }
        switch (*fmt) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            kputs_unlocked(s ? s : "(null)");
            break;
        }
        case 'c':
            uart_putc((char)va_arg(ap, int));
            break;
        case 'd': {
            int64_t v = is_long ? va_arg(ap, int64_t) : va_arg(ap, int);
            if (v < 0) {
                uart_putc('-');
                v = -v;
            }
            put_uint((uint64_t)v, 10, 0);
            break;
        }
        case 'u':
            put_uint(is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, 0);
            break;
        case 'x':
            put_uint(is_long ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width);
            break;
        case 'p':
            kputs_unlocked("0x");
            put_uint((uint64_t)va_arg(ap, void *), 16, 0);
            break;
        case '%':
            uart_putc('%');
            break;
        case '\0':
            return;
        default:
            uart_putc('?');
            break;
        }
    }
}

void kprintf_unlocked(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
}

void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    console_lock();
    kvprintf(fmt, ap);
    console_unlock();
    va_end(ap);
}

/* The test guest's defined exit: the i8042 "pulse reset line" command, which the
 * VMM answers by exiting with status 0. Works from CPL0 and (IOPL=3) CPL3. */
void machine_reset(void)
{
    outb(0x64, 0xfe);
    for (;;)
        cpu_relax();
}
