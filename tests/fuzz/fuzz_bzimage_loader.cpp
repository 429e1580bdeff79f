// The bzImage loader (vmm/src/boot/bzimage_loader.cpp) and the boot parameters
// written from its (untrusted) setup header: cmdline_size, initrd_addr_max,
// kernel_alignment, init_size, pref_address, setup_sects all come from the image.
// An accepted image lies in one RAM region from 1 MiB (decompression buffer
// included), its payload reads back, and the initramfs and zero page land where
// the header allows.
//
// Input: u8 flags (bit0: go through load_kernel), u16 cmdline length, cmdline,
// u16 initramfs length, initramfs, then the image.
#include <cstring>
#include <vector>

#include "support/boot_checks.h"
#include "support/fuzz_common.h"
#include "support/fuzz_input.h"

using namespace vmm;
using memory::GuestAddress;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static memory::GuestMemory mem = vmm::fuzz::make_memory(vmm::fuzz::kBootLayout);
    vmm::fuzz::FuzzInput in(data, size);
    bool detect = in.flag();
    std::string_view cmdline = in.chars(in.u16() % 4096);
    auto initramfs = in.bytes(in.u16());
    auto image = in.rest();

    auto loaded = detect ? boot::load_kernel(mem, image) : boot::load_bzimage(mem, image);
    if (!loaded) {
        FUZZ_CHECK(!loaded.error().message().empty());
        return 0;
    }
    const boot::LoadedKernel& k = *loaded;
    if (k.format == boot::KernelFormat::bzimage) {
        FUZZ_CHECK(k.header.has_value());
        FUZZ_CHECK(k.load_start.raw == boot::kBzImageLoadAddr);
        FUZZ_CHECK(k.entry.raw == boot::kBzImageLoadAddr + boot::kBzImage64BitEntryOffset);
        FUZZ_CHECK(k.header->setup_sects != 0);
        uint64_t payload_offset = (uint64_t{k.header->setup_sects} + 1) * 512;
        FUZZ_CHECK(payload_offset < image.size());
        FUZZ_CHECK(k.load_end >= boot::kBzImageLoadAddr + (image.size() - payload_offset));
        size_t check = std::min<size_t>(image.size() - payload_offset, 4096);
        std::vector<std::byte> got(check);
        FUZZ_CHECK(mem.read(k.load_start, got).has_value());
        FUZZ_CHECK(std::memcmp(got.data(), image.data() + payload_offset, check) == 0);
    }
    vmm::fuzz::check_loaded_and_boot(mem, k, cmdline, initramfs);
    return 0;
}
