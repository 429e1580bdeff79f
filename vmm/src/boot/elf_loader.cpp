// vmlinux (ELF64) loading. Only what the 64-bit boot path needs: PT_LOAD segments
// placed at their physical addresses, bss zeroed, entry = e_entry (physical).
#include <elf.h>

#include <cstring>
#include <vector>

#include "vmm/boot/boot_layout.h"
#include "vmm/boot/kernel_loader.h"

namespace vmm::boot {

namespace {

using memory::GuestAddress;

template <typename T>
T read_at(std::span<const std::byte> image, uint64_t offset) {
    T value;
    std::memcpy(&value, image.data() + offset, sizeof(T));
    return value;
}

[[nodiscard]] Result<Elf64_Ehdr> check_elf_header(std::span<const std::byte> image) {
    if (image.size() < sizeof(Elf64_Ehdr)) {
        return Error::msg("truncated kernel ELF: {} bytes, the ELF header needs {}", image.size(),
                          sizeof(Elf64_Ehdr));
    }
    auto ehdr = read_at<Elf64_Ehdr>(image, 0);
    if (std::memcmp(ehdr.e_ident, ELFMAG, SELFMAG) != 0) {
        return Error::msg("kernel image has no ELF magic");
    }
    if (ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_ident[EI_DATA] != ELFDATA2LSB ||
        ehdr.e_machine != EM_X86_64 || ehdr.e_type != ET_EXEC) {
        return Error::msg(
            "kernel is not an ELF64 x86_64 executable (class {}, data {}, machine {}, type {})",
            ehdr.e_ident[EI_CLASS], ehdr.e_ident[EI_DATA], ehdr.e_machine, ehdr.e_type);
    }
    if (ehdr.e_phnum == 0) return Error::msg("kernel ELF has no program headers");
    if (ehdr.e_phentsize != sizeof(Elf64_Phdr)) {
        return Error::msg("kernel ELF program header size is {}, expected {}", ehdr.e_phentsize,
                          sizeof(Elf64_Phdr));
    }
    // e_phnum <= 0xffff and the entry size is fixed, so only the offset can overflow.
    uint64_t table_size = uint64_t{ehdr.e_phnum} * sizeof(Elf64_Phdr);
    if (ehdr.e_phoff > image.size() || table_size > image.size() - ehdr.e_phoff) {
        return Error::msg("truncated kernel ELF: {} program headers at offset {:#x} run past "
                          "the end of the {}-byte file",
                          ehdr.e_phnum, ehdr.e_phoff, image.size());
    }
    return ehdr;
}

[[nodiscard]] Result<void> check_segment(const memory::GuestMemory& mem,
                                         std::span<const std::byte> image, unsigned index,
                                         const Elf64_Phdr& ph) {
    if (ph.p_offset > image.size() || ph.p_filesz > image.size() - ph.p_offset) {
        return Error::msg("truncated kernel ELF: segment {} file data at {:#x} size {:#x} runs "
                          "past the end of the {}-byte file",
                          index, ph.p_offset, ph.p_filesz, image.size());
    }
    if (ph.p_filesz > ph.p_memsz) {
        return Error::msg("kernel ELF segment {} has file size {:#x} above its memory size {:#x}",
                          index, ph.p_filesz, ph.p_memsz);
    }
    if (ph.p_memsz > UINT64_MAX - ph.p_paddr) {
        return Error::msg("kernel ELF segment {} at {:#x} with size {:#x} wraps the address space",
                          index, ph.p_paddr, ph.p_memsz);
    }
    uint64_t end = ph.p_paddr + ph.p_memsz;
    if (ph.p_paddr < kHighMemoryStart) {
        return Error::msg("kernel ELF segment {} [{:#x},{:#x}) starts below 1 MiB, where the boot "
                          "structures live",
                          index, ph.p_paddr, end);
    }
    // Regions are never adjacent in our layouts, so one region must hold the segment;
    // checking that here means the writes below cannot fail half-way.
    auto region_holds = [&](const memory::GuestRegion& r) {
        return r.range().contains(GuestAddress(ph.p_paddr), ph.p_memsz);
    };
    bool inside = false;
    for (const auto& r : mem.regions()) inside = inside || region_holds(r);
    if (!inside) {
        return Error::msg("kernel ELF segment {} [{:#x},{:#x}) lies outside guest RAM", index,
                          ph.p_paddr, end);
    }
    return ok();
}

}  // namespace

Result<LoadedKernel> load_elf(const memory::GuestMemory& mem, std::span<const std::byte> image) {
    Elf64_Ehdr ehdr = VMM_TRY(check_elf_header(image));

    // Validate every segment before writing any, so a bad image leaves RAM untouched.
    std::vector<std::pair<unsigned, Elf64_Phdr>> loads;
    for (unsigned i = 0; i < ehdr.e_phnum; ++i) {
        auto ph = read_at<Elf64_Phdr>(image, ehdr.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr));
        if (ph.p_type != PT_LOAD) continue;
        VMM_TRY(check_segment(mem, image, i, ph));
        loads.emplace_back(i, ph);
    }
    if (loads.empty()) return Error::msg("kernel ELF has no PT_LOAD segment");

    LoadedKernel kernel;
    kernel.format = KernelFormat::elf;
    kernel.entry = GuestAddress(ehdr.e_entry);
    kernel.load_start = GuestAddress(UINT64_MAX);
    bool entry_loaded = false;
    for (const auto& [index, ph] : loads) {
        uint64_t end = ph.p_paddr + ph.p_memsz;
        kernel.load_start = std::min(kernel.load_start, GuestAddress(ph.p_paddr));
        kernel.load_end = std::max(kernel.load_end, end);
        entry_loaded = entry_loaded || (ehdr.e_entry >= ph.p_paddr && ehdr.e_entry < end);
    }
    if (!entry_loaded) {
        return Error::msg("kernel ELF entry point {:#x} is not inside a loaded segment",
                          ehdr.e_entry);
    }

    for (const auto& [index, ph] : loads) {
        GuestAddress dst(ph.p_paddr);
        VMM_TRY_CTX(mem.write(dst, image.subspan(ph.p_offset, ph.p_filesz)),
                    fmt::format("loading kernel ELF segment {}", index));
        VMM_TRY_CTX(mem.fill(dst.unchecked_add(ph.p_filesz), ph.p_memsz - ph.p_filesz,
                             std::byte{0}),
                    fmt::format("zeroing bss of kernel ELF segment {}", index));
    }
    return kernel;
}

}  // namespace vmm::boot
