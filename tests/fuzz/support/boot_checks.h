// What the ELF and bzImage fuzz targets check after a kernel loaded: the VM then
// writes the command line, an initramfs and the zero page from the (untrusted)
// image's setup header, and none of it may land outside RAM or on the kernel.
#pragma once

#include <span>
#include <string_view>

#include "memory/guest_memory.h"
#include "vmm/boot/kernel_loader.h"

namespace vmm::fuzz {

// Guest RAM of the loader targets: low RAM up to 3 MiB, a second region after a hole.
inline const std::vector<memory::GuestRange> kBootLayout = {
    {memory::GuestAddress(0), 3 << 20}, {memory::GuestAddress(4 << 20), 2 << 20}};

// Checks `kernel` against guest RAM, then writes the boot parameters for it and
// checks what landed where.
void check_loaded_and_boot(const memory::GuestMemory& mem, const boot::LoadedKernel& kernel,
                           std::string_view cmdline, std::span<const std::byte> initramfs);

}  // namespace vmm::fuzz
