// Writes the command line, the initramfs and the zero page (struct boot_params)
// for the 64-bit Linux boot protocol (Documentation/arch/x86/boot.rst).
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "memory/guest_memory.h"
#include "vmm/boot/e820.h"
#include "vmm/boot/kernel_loader.h"

namespace vmm::boot {

struct BootParamsInput {
    const LoadedKernel* kernel = nullptr;
    std::string_view cmdline;
    std::span<const std::byte> initramfs;  // empty: no initramfs
    std::vector<E820Entry> e820;
};

// Where the initramfs goes: page-aligned, as high as possible in the first RAM
// region, below initrd_addr_max and above the kernel. Exposed for tests/logging.
[[nodiscard]] Result<memory::GuestAddress> place_initramfs(const memory::GuestMemory& mem,
                                                           const LoadedKernel& kernel,
                                                           uint64_t initramfs_size);

// Writes the NUL-terminated command line at kCmdlineAddr, the initramfs, and the
// zero page at kZeroPageAddr (RSI for the 64-bit entry).
[[nodiscard]] Result<void> write_boot_params(const memory::GuestMemory& mem,
                                             const BootParamsInput& in);

}  // namespace vmm::boot
