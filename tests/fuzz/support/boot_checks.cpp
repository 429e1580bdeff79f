#include "boot_checks.h"

#include <cstring>
#include <vector>

#include "fuzz_common.h"
#include "vmm/boot/boot_layout.h"
#include "vmm/boot/boot_params.h"
#include "vmm/boot/e820.h"

namespace vmm::fuzz {

using memory::GuestAddress;

void check_loaded_and_boot(const memory::GuestMemory& mem, const boot::LoadedKernel& kernel,
                           std::string_view cmdline, std::span<const std::byte> initramfs) {
    FUZZ_CHECK(kernel.load_start.raw >= boot::kHighMemoryStart);
    FUZZ_CHECK(kernel.load_end > kernel.load_start.raw);
    FUZZ_CHECK(kernel.load_end <= mem.end_address().raw);
    // A bzImage (payload and decompression buffer) must fit one region; an ELF's
    // segments may each lie in a different one, with holes between them.
    if (kernel.format == boot::KernelFormat::bzimage) {
        bool inside = false;
        for (const auto& r : mem.regions()) {
            inside = inside || r.range().contains(kernel.load_start, kernel.load_end - kernel.load_start.raw);
        }
        FUZZ_CHECK_MSG(inside, "the bzImage does not lie in one RAM region");
    }

    auto placed = boot::place_initramfs(mem, kernel, initramfs.size());
    boot::BootParamsInput in{&kernel, cmdline, initramfs, boot::build_e820(mem)};
    auto written = boot::write_boot_params(mem, in);
    if (!written) return;
    auto bp = mem.read_obj<boot_params>(GuestAddress(boot::kZeroPageAddr));
    FUZZ_CHECK(bp.has_value());
    FUZZ_CHECK(bp->hdr.cmd_line_ptr == boot::kCmdlineAddr);
    FUZZ_CHECK(bp->e820_entries <= E820_MAX_ENTRIES_ZEROPAGE);
    std::vector<char> line(cmdline.size() + 1);
    FUZZ_CHECK(mem.read(GuestAddress(boot::kCmdlineAddr), std::as_writable_bytes(std::span(line))).has_value());
    FUZZ_CHECK(std::memcmp(line.data(), cmdline.data(), cmdline.size()) == 0 && line.back() == '\0');
    if (initramfs.empty()) return;
    FUZZ_CHECK(placed.has_value());
    uint64_t at = uint64_t{bp->hdr.ramdisk_image} | (uint64_t{bp->ext_ramdisk_image} << 32);
    FUZZ_CHECK(at == placed->raw && at % 4096 == 0);
    FUZZ_CHECK(bp->hdr.ramdisk_size == initramfs.size());
    // Above the kernel, below the end of low RAM and the header's initrd_addr_max.
    FUZZ_CHECK(at >= kernel.load_end);
    const auto& low = mem.regions()[0];
    FUZZ_CHECK(at + initramfs.size() <= low.start().raw + low.size());
    if (kernel.header) FUZZ_CHECK(at + initramfs.size() - 1 <= kernel.header->initrd_addr_max);
    std::vector<std::byte> back(initramfs.size());
    FUZZ_CHECK(mem.read(*placed, back).has_value());
    FUZZ_CHECK(std::memcmp(back.data(), initramfs.data(), back.size()) == 0);
}

}  // namespace vmm::fuzz
