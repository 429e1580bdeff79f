// Loads a Linux kernel (vmlinux ELF or bzImage) into guest RAM for the 64-bit
// Linux boot protocol. Every field of the image is untrusted: it is checked
// against the file size and guest RAM before a byte is written.
#pragma once

#include <asm/bootparam.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "common/result.h"
#include "memory/guest_address.h"
#include "memory/guest_memory.h"

namespace vmm::boot {

enum class KernelFormat { elf, bzimage };

struct LoadedKernel {
    KernelFormat format = KernelFormat::elf;
    memory::GuestAddress entry;       // 64-bit entry point (ELF e_entry, or bzImage load + 0x200)
    memory::GuestAddress load_start;  // lowest byte loaded
    // One past the highest byte the kernel occupies. ELF: max p_paddr + p_memsz. bzImage:
    // also covers the decompression buffer (init_size bytes from where head_64.S puts it).
    uint64_t load_end = 0;
    std::optional<setup_header> header;  // bzImage only: copied into the zero page later
};

// bzImage: where the protected-mode payload goes, as Firecracker does.
inline constexpr uint64_t kBzImageLoadAddr = 0x100000;
inline constexpr uint64_t kBzImage64BitEntryOffset = 0x200;
inline constexpr uint16_t kMinBootProtocol = 0x020c;  // 2.12: XLF_KERNEL_64 exists

// Detects the format ("\x7fELF" magic, else bzImage) and loads the image.
[[nodiscard]] Result<LoadedKernel> load_kernel(const memory::GuestMemory& mem,
                                               std::span<const std::byte> image);
[[nodiscard]] Result<LoadedKernel> load_elf(const memory::GuestMemory& mem,
                                            std::span<const std::byte> image);
[[nodiscard]] Result<LoadedKernel> load_bzimage(const memory::GuestMemory& mem,
                                                std::span<const std::byte> image);

}  // namespace vmm::boot
