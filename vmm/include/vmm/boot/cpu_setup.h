// Initial x86_64 CPU state for a 64-bit Linux boot (Firecracker's regs.rs layout):
// identity page tables and GDT in guest memory, and the register, FPU, MSR and
// LAPIC values the KVM layer loads into each vCPU. Everything here is pure data;
// no ioctls.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>
#include <vector>

#include "common/result.h"
#include "memory/guest_address.h"
#include "memory/guest_memory.h"

namespace vmm::boot {

// GDT descriptor flags word (access byte in bits 7:0, G/DB/L/AVL in bits 15:12).
inline constexpr uint16_t kGdtCode64Flags = 0xa09b;  // P, DPL0, S, exec/read/accessed, L, G
inline constexpr uint16_t kGdtDataFlags = 0xc093;    // P, DPL0, S, read/write/accessed, DB, G
inline constexpr uint16_t kGdtTssFlags = 0x808b;     // P, busy 64-bit TSS, G
inline constexpr size_t kGdtEntries = 4;             // NULL, code, data, TSS
inline constexpr uint16_t kIdtLimit = 7;             // one empty 8-byte slot

// Page-table entry bits.
inline constexpr uint64_t kPtePresent = 1ull << 0;
inline constexpr uint64_t kPteWritable = 1ull << 1;
inline constexpr uint64_t kPteUser = 1ull << 2;
inline constexpr uint64_t kPtePageSize = 1ull << 7;

// Control register and EFER bits.
inline constexpr uint64_t kCr0Pe = 1ull << 0;
inline constexpr uint64_t kCr0Et = 1ull << 4;
inline constexpr uint64_t kCr0Ne = 1ull << 5;
inline constexpr uint64_t kCr0Pg = 1ull << 31;
inline constexpr uint64_t kCr4Pae = 1ull << 5;
inline constexpr uint64_t kEferSce = 1ull << 0;
inline constexpr uint64_t kEferLme = 1ull << 8;
inline constexpr uint64_t kEferLma = 1ull << 10;

// MSR indices used by boot_msrs().
inline constexpr uint32_t kMsrIa32Tsc = 0x10;
inline constexpr uint32_t kMsrIa32SysenterCs = 0x174;
inline constexpr uint32_t kMsrIa32SysenterEsp = 0x175;
inline constexpr uint32_t kMsrIa32SysenterEip = 0x176;
inline constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
inline constexpr uint32_t kMsrMtrrDefType = 0x2ff;
inline constexpr uint32_t kMsrStar = 0xc0000081;
inline constexpr uint32_t kMsrLstar = 0xc0000082;
inline constexpr uint32_t kMsrCstar = 0xc0000083;
inline constexpr uint32_t kMsrSyscallMask = 0xc0000084;
inline constexpr uint32_t kMsrKernelGsBase = 0xc0000102;
inline constexpr uint64_t kMiscEnableFastString = 1;
inline constexpr uint64_t kMtrrEnable = 1ull << 11;
inline constexpr uint64_t kMtrrTypeWriteBack = 6;

// LAPIC local vector table registers and delivery modes (bits 10:8).
inline constexpr size_t kApicLvtLint0 = 0x350;
inline constexpr size_t kApicLvtLint1 = 0x360;
inline constexpr uint32_t kApicDeliveryModeMask = 0x700;
inline constexpr uint32_t kApicModeNmi = 0x4;
inline constexpr uint32_t kApicModeExtInt = 0x7;

// Encodes a GDT descriptor (flags as above, 20-bit limit in units given by G).
constexpr uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit) {
    return ((uint64_t{base} & 0xff000000u) << 32) | ((uint64_t{flags} & 0xf0ffu) << 40) |
           ((uint64_t{limit} & 0x000f0000u) << 32) | ((uint64_t{base} & 0x00ffffffu) << 16) |
           (uint64_t{limit} & 0x0000ffffu);
}
// The boot GDT: NULL, 64-bit code (kCodeSelector), data (kDataSelector), TSS (kTssSelector).
std::array<uint64_t, kGdtEntries> boot_gdt();
// Decodes descriptor `entry` found at GDT slot `index` into the form KVM_SET_SREGS takes.
kvm_segment segment_from_gdt(uint64_t entry, uint16_t index);

// Identity map of [0, kIdentityMapSize) with 2 MiB pages, the GDT at kGdtAddr and
// an empty IDT at kIdtAddr.
[[nodiscard]] Result<void> write_page_tables_and_gdt(const memory::GuestMemory& mem);

// `current` (from KVM_GET_SREGS) switched to 64-bit long mode on the tables above;
// apic_base and interrupt_bitmap are kept.
kvm_sregs long_mode_sregs(const kvm_sregs& current);
// RIP = entry, RSP = RBP = kBootStackTop, RSI = kZeroPageAddr, RFLAGS = 0x2.
kvm_regs boot_registers(memory::GuestAddress entry);
// x87 control word 0x37f and MXCSR 0x1f80: the power-on defaults.
kvm_fpu boot_fpu();
// MSR values loaded before the first KVM_RUN (set them after KVM_SET_CPUID2).
std::vector<kvm_msr_entry> boot_msrs();
// LVT LINT0 = ExtINT, LINT1 = NMI; the other bits of both registers are kept.
void configure_lapic_lint(kvm_lapic_state& lapic);

}  // namespace vmm::boot
