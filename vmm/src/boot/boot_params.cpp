// Command line, initramfs and zero page for the 64-bit Linux boot protocol.
// Everything is validated first and written last, so an error leaves RAM untouched.
#include "vmm/boot/boot_params.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "memory/x86_64_layout.h"
#include "vmm/boot/boot_layout.h"

namespace vmm::boot {

namespace {

using memory::GuestAddress;
using memory::kPageSize;

inline constexpr uint16_t kBootFlag = 0xaa55;
inline constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
// 2.12 is the oldest protocol with a 64-bit entry; a vmlinux has no header of its
// own, and nothing we fill in needs a newer one.
inline constexpr uint16_t kSynthesizedVersion = 0x020c;
inline constexpr uint8_t kLoaderUndefined = 0xff;  // type_of_loader: "no registered id"
inline constexpr uint32_t kElfKernelAlignment = 0x1000000;  // CONFIG_PHYSICAL_ALIGN default
inline constexpr uint64_t kCmdlineLimit = kCmdlineMax - 1;  // the NUL needs one byte

constexpr uint32_t lo32(uint64_t v) { return static_cast<uint32_t>(v); }
constexpr uint32_t hi32(uint64_t v) { return static_cast<uint32_t>(v >> 32); }

[[nodiscard]] Result<void> check_cmdline(std::string_view cmdline, const LoadedKernel& kernel) {
    uint64_t limit = kCmdlineLimit;
    // A bzImage states how long a command line it accepts (excluding the NUL).
    if (kernel.header) limit = std::min<uint64_t>(limit, uint32_t{kernel.header->cmdline_size});
    if (cmdline.size() > limit) {
        return Error::msg("kernel command line is {} bytes; the limit is {}", cmdline.size(),
                          limit);
    }
    if (cmdline.find('\0') != std::string_view::npos) {
        return Error::msg("kernel command line contains a NUL byte");
    }
    return ok();
}

// The setup header for a vmlinux, which carries none: what a bzImage would say.
setup_header synthesize_header() {
    setup_header hdr{};
    hdr.boot_flag = kBootFlag;
    hdr.header = kHdrSMagic;
    hdr.version = kSynthesizedVersion;
    hdr.loadflags = LOADED_HIGH;
    hdr.kernel_alignment = kElfKernelAlignment;
    hdr.initrd_addr_max = lo32(kDefaultInitrdAddrMax);
    hdr.cmdline_size = lo32(kCmdlineLimit);
    return hdr;
}

boot_params build_zero_page(const BootParamsInput& in, GuestAddress initrd, uint64_t initrd_size) {
    boot_params bp{};
    bp.hdr = in.kernel->header ? *in.kernel->header : synthesize_header();
    bp.hdr.type_of_loader = kLoaderUndefined;
    bp.hdr.cmd_line_ptr = lo32(kCmdlineAddr);
    bp.ext_cmd_line_ptr = hi32(kCmdlineAddr);
    bp.hdr.ramdisk_image = lo32(initrd.raw);
    bp.ext_ramdisk_image = hi32(initrd.raw);
    bp.hdr.ramdisk_size = lo32(initrd_size);
    bp.ext_ramdisk_size = hi32(initrd_size);
    for (size_t i = 0; i < in.e820.size(); ++i) {
        bp.e820_table[i] = {in.e820[i].addr, in.e820[i].size, in.e820[i].type};
    }
    bp.e820_entries = static_cast<uint8_t>(in.e820.size());
    return bp;
}

}  // namespace

Result<GuestAddress> place_initramfs(const memory::GuestMemory& mem, const LoadedKernel& kernel,
                                     uint64_t initramfs_size) {
    auto regions = mem.regions();
    if (regions.empty()) return Error::msg("guest memory has no RAM for the initramfs");
    uint64_t low_end = regions[0].start().raw + regions[0].size();
    uint64_t addr_max = kernel.header ? uint32_t{kernel.header->initrd_addr_max}
                                      : kDefaultInitrdAddrMax;
    // initrd_addr_max is the highest address the initramfs may occupy, so +1 is its end.
    uint64_t top = std::min(addr_max + 1, low_end) & ~(kPageSize - 1);
    uint64_t floor = (kernel.load_end + kPageSize - 1) & ~(kPageSize - 1);
    if (initramfs_size > top || ((top - initramfs_size) & ~(kPageSize - 1)) < floor) {
        return Error::msg("guest memory ({} MiB) is too small for the kernel and initramfs "
                          "(kernel ends at {:#x}, the {}-byte initramfs must end below {:#x})",
                          mem.total_size() >> 20, kernel.load_end, initramfs_size, top);
    }
    return GuestAddress((top - initramfs_size) & ~(kPageSize - 1));
}

Result<void> write_boot_params(const memory::GuestMemory& mem, const BootParamsInput& in) {
    if (in.kernel == nullptr) return Error::msg("boot parameters need a loaded kernel");
    VMM_TRY(check_cmdline(in.cmdline, *in.kernel));
    if (in.e820.size() > E820_MAX_ENTRIES_ZEROPAGE) {
        return Error::msg("e820 map has {} entries; the zero page holds {}", in.e820.size(),
                          E820_MAX_ENTRIES_ZEROPAGE);
    }
    GuestAddress initrd{};
    if (!in.initramfs.empty()) initrd = VMM_TRY(place_initramfs(mem, *in.kernel, in.initramfs.size()));

    std::vector<std::byte> cmdline(in.cmdline.size() + 1, std::byte{0});
    std::memcpy(cmdline.data(), in.cmdline.data(), in.cmdline.size());
    VMM_TRY_CTX(mem.write(GuestAddress(kCmdlineAddr), cmdline), "writing kernel command line");
    if (!in.initramfs.empty()) {
        VMM_TRY_CTX(mem.write(initrd, in.initramfs), "writing initramfs");
    }
    boot_params bp = build_zero_page(in, initrd, in.initramfs.size());
    VMM_TRY_CTX(mem.write_obj(GuestAddress(kZeroPageAddr), bp), "writing zero page");
    return ok();
}

}  // namespace vmm::boot
