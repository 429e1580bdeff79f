// The vmlinux (ELF64) loader (vmm/src/boot/elf_loader.cpp) and the boot parameters
// written for what it loaded. Every header field of the image is untrusted; an
// accepted image must lie in one RAM region above 1 MiB with its entry inside a
// loaded segment, and the last PT_LOAD segment must read back as its file bytes
// followed by zeros.
//
// Input: u8 flags (bit0: go through load_kernel), u16 cmdline length, cmdline,
// u16 initramfs length, initramfs, then the image.
#include <elf.h>

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

    auto loaded = detect ? boot::load_kernel(mem, image) : boot::load_elf(mem, image);
    if (!loaded) {
        FUZZ_CHECK(!loaded.error().message().empty());
        return 0;
    }
    const boot::LoadedKernel& k = *loaded;
    FUZZ_CHECK(k.format == boot::KernelFormat::elf || detect);
    if (k.format == boot::KernelFormat::elf) {
        FUZZ_CHECK(!k.header.has_value());
        FUZZ_CHECK(k.entry >= k.load_start && k.entry.raw < k.load_end);
        // The last PT_LOAD was written last: its bytes are the file's, then zeros.
        Elf64_Ehdr eh;
        std::memcpy(&eh, image.data(), sizeof(eh));
        Elf64_Phdr last{};
        for (unsigned i = 0; i < eh.e_phnum; ++i) {
            Elf64_Phdr ph;
            std::memcpy(&ph, image.data() + eh.e_phoff + i * sizeof(ph), sizeof(ph));
            if (ph.p_type == PT_LOAD) last = ph;
        }
        size_t check = std::min<uint64_t>(last.p_memsz, 4096);
        std::vector<std::byte> got(check);
        FUZZ_CHECK(mem.read(GuestAddress(last.p_paddr), got).has_value());
        for (size_t i = 0; i < check; ++i) {
            std::byte want = i < last.p_filesz ? image[last.p_offset + i] : std::byte{0};
            FUZZ_CHECK(got[i] == want);
        }
    }
    vmm::fuzz::check_loaded_and_boot(mem, k, cmdline, initramfs);
    return 0;
}
