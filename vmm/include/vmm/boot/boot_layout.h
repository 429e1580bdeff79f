// Where the VMM puts boot structures in low guest memory (x86_64). Everything here
// lies below 1 MiB and outside the kernel's load area; the guest owns it all after
// it has read what it needs.
#pragma once

#include <cstdint>

namespace vmm::boot {

inline constexpr uint64_t kGdtAddr = 0x500;        // NULL, code64 (0x8), data (0x10), TSS (0x18)
inline constexpr uint64_t kIdtAddr = 0x520;        // empty IDT (limit 7)
inline constexpr uint64_t kZeroPageAddr = 0x7000;  // struct boot_params, passed in RSI
inline constexpr uint64_t kBootStackTop = 0x8ff0;  // initial RSP/RBP
inline constexpr uint64_t kPml4Addr = 0x9000;      // identity map of the first 4 GiB:
inline constexpr uint64_t kPdptAddr = 0xa000;      //   PML4 -> PDPT -> 4 PDs of 2 MiB pages
inline constexpr uint64_t kPdAddr = 0xb000;        //   0xb000..0xefff
inline constexpr uint64_t kIdentityMapSize = 4ull << 30;
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMax = 2048;         // x86 COMMAND_LINE_SIZE, incl. the NUL
inline constexpr uint64_t kMptableAddr = 0x9fc00;     // last KiB below 640 KiB
inline constexpr uint64_t kEbdaStart = 0x9fc00;       // e820: reserved from here ...
inline constexpr uint64_t kBiosRomStart = 0xf0000;    // ... and the BIOS area
inline constexpr uint64_t kHighMemoryStart = 0x100000;  // 1 MiB: kernels load at or above
inline constexpr uint64_t kDefaultInitrdAddrMax = 0x7fffffff;  // vmlinux has no setup header

// GDT selectors.
inline constexpr uint16_t kCodeSelector = 0x08;
inline constexpr uint16_t kDataSelector = 0x10;
inline constexpr uint16_t kTssSelector = 0x18;

}  // namespace vmm::boot
