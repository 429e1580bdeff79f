// Format detection: an ELF magic means vmlinux, anything else is tried as a bzImage
// (which reports its own "no HdrS" error), as Firecracker and cloud-hypervisor do.
#include <cstring>

#include "vmm/boot/kernel_loader.h"

namespace vmm::boot {

Result<LoadedKernel> load_kernel(const memory::GuestMemory& mem,
                                 std::span<const std::byte> image) {
    static constexpr char kElfMagic[4] = {0x7f, 'E', 'L', 'F'};
    if (image.size() >= sizeof(kElfMagic) &&
        std::memcmp(image.data(), kElfMagic, sizeof(kElfMagic)) == 0) {
        return load_elf(mem, image);
    }
    return load_bzimage(mem, image);
}

}  // namespace vmm::boot
