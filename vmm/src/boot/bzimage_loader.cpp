// bzImage loading for the 64-bit boot protocol entry (Documentation/arch/x86/boot.rst),
// as Firecracker does it: the protected-mode payload goes to 1 MiB and the vCPU
// starts at load + 0x200 (startup_64 of the decompressor), skipping real-mode setup.
#include <algorithm>
#include <cstring>

#include "vmm/boot/boot_layout.h"
#include "vmm/boot/kernel_loader.h"

namespace vmm::boot {

namespace {

using memory::GuestAddress;

inline constexpr uint64_t kSetupHeaderOffset = 0x1f1;
inline constexpr uint64_t kSectorSize = 512;
inline constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS" at 0x202
inline constexpr unsigned kDefaultSetupSects = 4;   // setup_sects == 0 means 4

constexpr uint64_t align_up(uint64_t value, uint64_t align) {
    return (value + align - 1) & ~(align - 1);
}

[[nodiscard]] Result<setup_header> read_header(std::span<const std::byte> image) {
    if (image.size() < kSetupHeaderOffset + sizeof(setup_header)) {
        return Error::msg("truncated bzImage: {} bytes, the setup header ends at {:#x}",
                          image.size(), kSetupHeaderOffset + sizeof(setup_header));
    }
    setup_header hdr;
    std::memcpy(&hdr, image.data() + kSetupHeaderOffset, sizeof(hdr));
    if (hdr.header != kHdrSMagic) {
        return Error::msg("kernel image is neither an ELF nor a bzImage (no \"HdrS\" at 0x202)");
    }
    if (hdr.version < kMinBootProtocol) {
        return Error::msg("bzImage boot protocol {}.{:02} is too old; 2.12 or newer is needed",
                          hdr.version >> 8, hdr.version & 0xff);
    }
    if ((hdr.xloadflags & XLF_KERNEL_64) == 0) {
        return Error::msg("bzImage has no 64-bit entry point (XLF_KERNEL_64 not set)");
    }
    if (hdr.kernel_alignment == 0 || (hdr.kernel_alignment & (hdr.kernel_alignment - 1)) != 0) {
        return Error::msg("bzImage kernel_alignment {:#x} is not a power of two",
                          uint32_t{hdr.kernel_alignment});
    }
    // The header is only as long as the image says (0x202 + byte at 0x201); bytes of
    // our struct past that are setup code of an older protocol, not header fields.
    uint64_t header_end = 0x202 + std::to_integer<uint64_t>(image[0x201]);
    uint64_t valid = std::min<uint64_t>(header_end - kSetupHeaderOffset, sizeof(hdr));
    std::memset(reinterpret_cast<std::byte*>(&hdr) + valid, 0, sizeof(hdr) - valid);
    if (hdr.setup_sects == 0) hdr.setup_sects = kDefaultSetupSects;
    return hdr;
}

// Where the decompressor builds the kernel (arch/x86/boot/compressed/head_64.S):
// load address rounded up to kernel_alignment but not below LOAD_PHYSICAL_ADDR
// (= pref_address) when relocatable, else pref_address itself. init_size bytes are
// used from there, so that (not just load + init_size) is what the kernel occupies.
uint64_t decompression_end(const setup_header& hdr, uint64_t load) {
    uint64_t buffer = hdr.pref_address;
    if (hdr.relocatable_kernel != 0) {
        buffer = std::max<uint64_t>(align_up(load, hdr.kernel_alignment), hdr.pref_address);
    }
    return buffer + hdr.init_size;  // pref_address < 2^64 - 2^32 was checked by the caller
}

}  // namespace

Result<LoadedKernel> load_bzimage(const memory::GuestMemory& mem,
                                  std::span<const std::byte> image) {
    setup_header hdr = VMM_TRY(read_header(image));
    uint64_t payload_offset = (uint64_t{hdr.setup_sects} + 1) * kSectorSize;
    if (payload_offset >= image.size()) {
        return Error::msg("truncated bzImage: the setup code takes {:#x} bytes of a {}-byte file",
                          payload_offset, image.size());
    }
    uint64_t payload_size = image.size() - payload_offset;

    // Always 1 MiB, whatever pref_address says: the 64-bit entry relocates itself, and a
    // non-relocatable kernel still decompresses to pref_address (accounted for below).
    const uint64_t load = kBzImageLoadAddr;
    if (hdr.pref_address > UINT64_MAX / 2) {
        return Error::msg("bzImage pref_address {:#x} is out of range",
                          uint64_t{hdr.pref_address});
    }
    uint64_t end = std::max(load + payload_size, decompression_end(hdr, load));
    bool fits = false;
    for (const auto& r : mem.regions()) {
        fits = fits || r.range().contains(GuestAddress(load), end - load);
    }
    if (!fits) {
        return Error::msg("guest memory ({} MiB) is too small for the bzImage: it needs "
                          "[{:#x},{:#x}) ({} bytes payload, init_size {:#x})",
                          mem.total_size() >> 20, load, end, payload_size,
                          uint32_t{hdr.init_size});
    }
    VMM_TRY_CTX(mem.write(GuestAddress(load), image.subspan(payload_offset)),
                "loading bzImage payload");

    LoadedKernel kernel;
    kernel.format = KernelFormat::bzimage;
    kernel.entry = GuestAddress(load + kBzImage64BitEntryOffset);
    kernel.load_start = GuestAddress(load);
    kernel.load_end = end;
    kernel.header = hdr;
    return kernel;
}

}  // namespace vmm::boot
