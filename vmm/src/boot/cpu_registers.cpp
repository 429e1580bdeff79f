// Register state for the 64-bit Linux boot protocol (Documentation/arch/x86/boot.rst,
// "64-bit Boot Protocol"): long mode with an identity map, flat segments, RSI
// pointing at boot_params. Values follow Firecracker's arch/x86_64/regs.rs.
#include "vmm/boot/boot_layout.h"
#include "vmm/boot/cpu_setup.h"

namespace vmm::boot {
namespace {

constexpr uint64_t kRflagsReserved = 0x2;  // bit 1 always reads as 1
constexpr uint16_t kFpuControlWord = 0x37f;  // FNINIT default: all exceptions masked
constexpr uint32_t kMxcsrDefault = 0x1f80;   // all SSE exceptions masked, round to nearest

uint8_t bits(uint64_t v, unsigned shift, uint64_t mask) {
    return static_cast<uint8_t>((v >> shift) & mask);
}

}  // namespace

kvm_segment segment_from_gdt(uint64_t entry, uint16_t index) {
    kvm_segment seg{};
    seg.base = ((entry >> 16) & 0xffffff) | (((entry >> 56) & 0xff) << 24);
    uint32_t limit = static_cast<uint32_t>((entry & 0xffff) | ((entry >> 32) & 0xf0000));
    seg.g = bits(entry, 55, 1);
    // KVM wants the byte-granular limit; with G=1 the low 12 bits are all ones.
    seg.limit = seg.g ? (limit << 12) | 0xfff : limit;
    seg.selector = static_cast<uint16_t>(index * 8);
    seg.type = bits(entry, 40, 0xf);
    seg.s = bits(entry, 44, 1);
    seg.dpl = bits(entry, 45, 3);
    seg.present = bits(entry, 47, 1);
    seg.avl = bits(entry, 52, 1);
    seg.l = bits(entry, 53, 1);
    seg.db = bits(entry, 54, 1);
    seg.unusable = seg.present ? 0 : 1;
    return seg;
}

kvm_sregs long_mode_sregs(const kvm_sregs& current) {
    kvm_sregs sregs = current;  // keeps apic_base, interrupt_bitmap, ldt, cr8
    const auto gdt = boot_gdt();
    const kvm_segment code = segment_from_gdt(gdt[kCodeSelector / 8], kCodeSelector / 8);
    const kvm_segment data = segment_from_gdt(gdt[kDataSelector / 8], kDataSelector / 8);
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.tr = segment_from_gdt(gdt[kTssSelector / 8], kTssSelector / 8);

    sregs.gdt.base = kGdtAddr;
    sregs.gdt.limit = static_cast<uint16_t>(kGdtEntries * sizeof(uint64_t) - 1);
    sregs.idt.base = kIdtAddr;
    sregs.idt.limit = kIdtLimit;

    // Set every control bit explicitly instead of OR-ing into the reset value: the
    // reset CR0 has CD|NW (caches disabled), which would make early boot crawl.
    sregs.cr0 = kCr0Pe | kCr0Et | kCr0Ne | kCr0Pg;
    sregs.cr2 = 0;
    sregs.cr3 = kPml4Addr;
    sregs.cr4 = kCr4Pae;
    // No SCE: the kernel enables SYSCALL itself once it has set up LSTAR.
    sregs.efer = kEferLme | kEferLma;
    return sregs;
}

kvm_regs boot_registers(memory::GuestAddress entry) {
    kvm_regs regs{};
    regs.rip = entry.raw;
    regs.rsp = kBootStackTop;
    regs.rbp = kBootStackTop;
    regs.rsi = kZeroPageAddr;  // boot protocol: RSI = &boot_params
    regs.rflags = kRflagsReserved;  // IF clear: no interrupts until the kernel is ready
    return regs;
}

kvm_fpu boot_fpu() {
    kvm_fpu fpu{};
    fpu.fcw = kFpuControlWord;
    fpu.mxcsr = kMxcsrDefault;
    return fpu;
}

}  // namespace vmm::boot
