// The x86_64 guest-physical layout: RAM below 3 GiB, a 1 GiB hole for device MMIO
// (virtio-mmio slots, PCI ECAM, IOAPIC, LAPIC), the rest of RAM from 4 GiB up.
#pragma once

#include <cstdint>
#include <vector>

#include "memory/guest_address.h"

namespace vmm::memory::x86_64 {

inline constexpr uint64_t KiB = 1024;
inline constexpr uint64_t MiB = 1024 * KiB;
inline constexpr uint64_t GiB = 1024 * MiB;

inline constexpr uint64_t kMmioHoleStart = 3 * GiB;  // 0xc000_0000
inline constexpr uint64_t kMmioHoleSize = 1 * GiB;
inline constexpr uint64_t kHighRamStart = 4 * GiB;

// Within the hole: 4 KiB virtio-mmio slots from its start, PCI ECAM (256 MiB) below
// the IOAPIC, and the fixed IOAPIC/LAPIC pages.
inline constexpr uint64_t kVirtioMmioBase = kMmioHoleStart;
inline constexpr uint64_t kVirtioMmioSlotSize = 4 * KiB;
inline constexpr uint64_t kPciMmio32Base = 0xd000'0000;  // 32-bit BARs of PCI functions
inline constexpr uint64_t kPciMmio32Size = 256 * MiB;
inline constexpr uint64_t kPciMmio64Size = 64 * GiB;      // 64-bit BARs, from the GiB above RAM
inline constexpr uint64_t kPciIoBase = 0xc000;             // I/O BARs: 0xc000..0xffff
inline constexpr uint64_t kPciIoEnd = 0x10000;
inline constexpr uint64_t kPciEcamBase = 0xe000'0000;
inline constexpr uint64_t kPciEcamSize = 256 * MiB;
inline constexpr uint64_t kIoapicBase = 0xfec0'0000;
inline constexpr uint64_t kLapicBase = 0xfee0'0000;

// RAM regions for `ram_size` bytes (rounded down to 4 KiB by the caller).
std::vector<GuestRange> ram_layout(uint64_t ram_size);

}  // namespace vmm::memory::x86_64
