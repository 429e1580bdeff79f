#include <elf.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "memory/x86_64_layout.h"
#include "vmm/boot/kernel_loader.h"

using namespace vmm;
using memory::GuestAddress;
using memory::x86_64::MiB;

namespace {

memory::GuestMemory make_memory(uint64_t size) {
    auto layout = memory::x86_64::ram_layout(size);
    auto mem = memory::GuestMemory::create(layout);
    REQUIRE(mem.has_value());
    return std::move(mem).value();
}

struct Segment {
    uint64_t paddr;
    std::vector<std::byte> data;
    uint64_t memsz;
    uint32_t type = PT_LOAD;
};

std::vector<std::byte> pattern(size_t n, uint8_t seed) {
    std::vector<std::byte> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = std::byte(static_cast<uint8_t>(seed + i * 7));
    return v;
}

// ELF header, program headers right after it, then each segment's data in order.
std::vector<std::byte> make_elf(const std::vector<Segment>& segs, uint64_t entry) {
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_entry = entry;
    eh.e_phoff = sizeof(Elf64_Ehdr);
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = static_cast<uint16_t>(segs.size());
    std::vector<std::byte> out(sizeof(eh) + segs.size() * sizeof(Elf64_Phdr));
    std::memcpy(out.data(), &eh, sizeof(eh));
    for (size_t i = 0; i < segs.size(); ++i) {
        Elf64_Phdr ph{};
        ph.p_type = segs[i].type;
        ph.p_offset = out.size();
        ph.p_paddr = segs[i].paddr;
        ph.p_vaddr = segs[i].paddr + 0xffffffff80000000ull;
        ph.p_filesz = segs[i].data.size();
        ph.p_memsz = segs[i].memsz;
        std::memcpy(out.data() + sizeof(eh) + i * sizeof(ph), &ph, sizeof(ph));
        out.insert(out.end(), segs[i].data.begin(), segs[i].data.end());
    }
    return out;
}

template <typename F>
void patch_phdr(std::vector<std::byte>& image, size_t index, F&& change) {
    Elf64_Phdr ph;
    std::byte* at = image.data() + sizeof(Elf64_Ehdr) + index * sizeof(Elf64_Phdr);
    std::memcpy(&ph, at, sizeof(ph));
    change(ph);
    std::memcpy(at, &ph, sizeof(ph));
}

template <typename F>
void patch_ehdr(std::vector<std::byte>& image, F&& change) {
    Elf64_Ehdr eh;
    std::memcpy(&eh, image.data(), sizeof(eh));
    change(eh);
    std::memcpy(image.data(), &eh, sizeof(eh));
}

std::vector<std::byte> read_guest(const memory::GuestMemory& mem, uint64_t addr, size_t n) {
    std::vector<std::byte> out(n);
    REQUIRE(mem.read(GuestAddress(addr), out).has_value());
    return out;
}

std::vector<std::byte> valid_image() {
    return make_elf({{2 * MiB, pattern(0x300, 1), 0x2000}, {4 * MiB, pattern(0x80, 9), 0x80}},
                    2 * MiB + 0x10);
}

std::string load_error(const std::vector<std::byte>& image, uint64_t ram = 512 * MiB) {
    auto mem = make_memory(ram);
    auto r = boot::load_kernel(mem, image);
    REQUIRE_FALSE(r.has_value());
    return r.error().message();
}

}  // namespace

TEST_CASE("ELF loader places PT_LOAD segments and zeroes bss", "[boot]") {
    auto mem = make_memory(512 * MiB);
    // Dirty the bss area first so zeroing is observable.
    REQUIRE(mem.fill(GuestAddress(2 * MiB), 0x2001, std::byte{0xaa}).has_value());
    // A non-PT_LOAD header must be ignored, even one pointing below 1 MiB.
    auto with_note = make_elf({{2 * MiB, pattern(0x300, 1), 0x2000},
                               {0x1000, pattern(0x10, 3), 0x10, PT_NOTE},
                               {4 * MiB, pattern(0x80, 9), 0x80}},
                              2 * MiB + 0x10);
    auto r = boot::load_kernel(mem, with_note);
    REQUIRE(r.has_value());
    CHECK(r->format == boot::KernelFormat::elf);
    CHECK(r->entry == GuestAddress(2 * MiB + 0x10));
    CHECK(r->load_start == GuestAddress(2 * MiB));
    CHECK(r->load_end == 4 * MiB + 0x80);
    CHECK_FALSE(r->header.has_value());
    CHECK(read_guest(mem, 2 * MiB, 0x300) == pattern(0x300, 1));
    CHECK(read_guest(mem, 4 * MiB, 0x80) == pattern(0x80, 9));
    auto bss = read_guest(mem, 2 * MiB + 0x300, 0x2000 - 0x300);
    CHECK(std::all_of(bss.begin(), bss.end(), [](std::byte b) { return b == std::byte{0}; }));
    // The byte after the segment's memsz is not touched.
    CHECK(read_guest(mem, 2 * MiB + 0x2000, 1)[0] == std::byte{0xaa});
}

TEST_CASE("ELF loader rejects malformed headers", "[boot]") {
    SECTION("truncated header") {
        auto image = valid_image();
        image.resize(40);
        CHECK_THAT(load_error(image), Catch::Contains("truncated kernel ELF"));
    }
    SECTION("wrong magic goes to the bzImage path and fails there") {
        auto image = valid_image();
        image[1] = std::byte{'X'};
        CHECK_THAT(load_error(image), Catch::Contains("neither an ELF nor a bzImage"));
        auto mem = make_memory(512 * MiB);
        auto r = boot::load_elf(mem, image);
        REQUIRE_FALSE(r.has_value());
        CHECK_THAT(r.error().message(), Catch::Contains("no ELF magic"));
    }
    SECTION("wrong machine") {
        auto image = valid_image();
        patch_ehdr(image, [](Elf64_Ehdr& e) { e.e_machine = EM_386; });
        CHECK_THAT(load_error(image), Catch::Contains("not an ELF64 x86_64 executable"));
    }
    SECTION("32-bit class") {
        auto image = valid_image();
        patch_ehdr(image, [](Elf64_Ehdr& e) { e.e_ident[EI_CLASS] = ELFCLASS32; });
        CHECK_THAT(load_error(image), Catch::Contains("not an ELF64 x86_64 executable"));
    }
    SECTION("shared object instead of executable") {
        auto image = valid_image();
        patch_ehdr(image, [](Elf64_Ehdr& e) { e.e_type = ET_DYN; });
        CHECK_THAT(load_error(image), Catch::Contains("not an ELF64 x86_64 executable"));
    }
    SECTION("program headers past the end of the file") {
        auto image = valid_image();
        patch_ehdr(image, [&](Elf64_Ehdr& e) { e.e_phoff = image.size() - 10; });
        CHECK_THAT(load_error(image), Catch::Contains("truncated kernel ELF"));
        patch_ehdr(image, [](Elf64_Ehdr& e) { e.e_phoff = UINT64_MAX - 8; });
        CHECK_THAT(load_error(image), Catch::Contains("truncated kernel ELF"));
    }
    SECTION("no PT_LOAD") {
        auto image = make_elf({{2 * MiB, pattern(0x10, 1), 0x10, PT_NOTE}}, 2 * MiB);
        CHECK_THAT(load_error(image), Catch::Contains("no PT_LOAD"));
    }
}

TEST_CASE("ELF loader rejects bad segments", "[boot]") {
    auto image = valid_image();
    SECTION("segment outside guest RAM") {
        patch_phdr(image, 1, [](Elf64_Phdr& p) { p.p_paddr = 600 * MiB; });
        CHECK(load_error(image) ==
              "kernel ELF segment 1 [0x25800000,0x25800080) lies outside guest RAM");
    }
    SECTION("segment straddling the end of RAM") {
        patch_phdr(image, 0, [](Elf64_Phdr& p) { p.p_paddr = 512 * MiB - 0x1000; });
        CHECK_THAT(load_error(image), Catch::Contains("segment 0") &&
                                          Catch::Contains("lies outside guest RAM"));
    }
    SECTION("segment below 1 MiB") {
        patch_phdr(image, 0, [](Elf64_Phdr& p) { p.p_paddr = 0x80000; });
        CHECK_THAT(load_error(image), Catch::Contains("segment 0 [0x80000,0x82000) starts below 1 MiB"));
    }
    SECTION("filesz larger than memsz") {
        patch_phdr(image, 0, [](Elf64_Phdr& p) { p.p_memsz = 0x100; });
        CHECK_THAT(load_error(image), Catch::Contains("file size 0x300 above its memory size 0x100"));
    }
    SECTION("file data past EOF") {
        patch_phdr(image, 1, [](Elf64_Phdr& p) { p.p_filesz = 0x81; p.p_memsz = 0x100; });
        CHECK_THAT(load_error(image), Catch::Contains("truncated kernel ELF: segment 1"));
    }
    SECTION("file offset overflow") {
        patch_phdr(image, 1, [](Elf64_Phdr& p) { p.p_offset = UINT64_MAX - 0x10; });
        CHECK_THAT(load_error(image), Catch::Contains("truncated kernel ELF: segment 1"));
    }
    SECTION("p_paddr + p_memsz overflows") {
        patch_phdr(image, 1, [](Elf64_Phdr& p) {
            p.p_paddr = UINT64_MAX - 0xfff;
            p.p_memsz = 0x2000;
        });
        CHECK_THAT(load_error(image), Catch::Contains("segment 1") && Catch::Contains("wraps"));
    }
    SECTION("entry outside every segment") {
        patch_ehdr(image, [](Elf64_Ehdr& e) { e.e_entry = 3 * MiB; });
        CHECK_THAT(load_error(image), Catch::Contains("entry point 0x300000 is not inside"));
    }
}

TEST_CASE("ELF loader writes nothing when a later segment is bad", "[boot]") {
    auto mem = make_memory(512 * MiB);
    auto image = valid_image();
    patch_phdr(image, 1, [](Elf64_Phdr& p) { p.p_paddr = 600 * MiB; });
    REQUIRE_FALSE(boot::load_kernel(mem, image).has_value());
    auto first = read_guest(mem, 2 * MiB, 0x300);
    CHECK(std::all_of(first.begin(), first.end(), [](std::byte b) { return b == std::byte{0}; }));
}

TEST_CASE("ELF loader accepts a segment in high RAM above the MMIO hole", "[boot]") {
    using memory::x86_64::GiB;
    auto mem = make_memory(5 * GiB);
    auto image = make_elf({{4 * GiB + 2 * MiB, pattern(0x40, 5), 0x1000}}, 4 * GiB + 2 * MiB);
    auto r = boot::load_kernel(mem, image);
    REQUIRE(r.has_value());
    CHECK(read_guest(mem, 4 * GiB + 2 * MiB, 0x40) == pattern(0x40, 5));
    // ... but not one reaching into the hole.
    auto bad = make_elf({{3 * GiB - 0x1000, pattern(0x40, 5), 0x2000}}, 3 * GiB - 0x1000);
    CHECK_THAT(load_error(bad, 5 * GiB), Catch::Contains("lies outside guest RAM"));
}

#ifdef TEST_GUEST_ELF
TEST_CASE("ELF loader loads the real test guest", "[boot]") {
    std::ifstream file(TEST_GUEST_ELF, std::ios::binary);
    REQUIRE(file.good());
    std::vector<char> raw((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    auto image = std::as_bytes(std::span(raw));
    auto mem = make_memory(256 * MiB);
    auto r = boot::load_kernel(mem, image);
    REQUIRE(r.has_value());
    CHECK(r->format == boot::KernelFormat::elf);
    CHECK(r->load_start.raw >= 1 * MiB);
    CHECK(r->entry.raw >= r->load_start.raw);
    CHECK(r->entry.raw < r->load_end);
    // Every PT_LOAD's file bytes are in guest RAM at p_paddr.
    Elf64_Ehdr eh;
    std::memcpy(&eh, raw.data(), sizeof(eh));
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, raw.data() + eh.e_phoff + i * sizeof(ph), sizeof(ph));
        if (ph.p_type != PT_LOAD || ph.p_filesz == 0) continue;
        auto want = image.subspan(ph.p_offset, ph.p_filesz);
        auto got = read_guest(mem, ph.p_paddr, ph.p_filesz);
        CHECK(std::equal(got.begin(), got.end(), want.begin(), want.end()));
    }
}
#endif
