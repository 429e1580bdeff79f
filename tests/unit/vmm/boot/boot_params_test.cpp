#include "vmm/boot/boot_params.h"

#include <asm/bootparam.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "memory/x86_64_layout.h"
#include "vmm/boot/boot_layout.h"

using namespace vmm;
using memory::GuestAddress;
using memory::x86_64::GiB;
using memory::x86_64::MiB;

namespace {

memory::GuestMemory make_memory(uint64_t size) {
    auto layout = memory::x86_64::ram_layout(size);
    auto mem = memory::GuestMemory::create(layout);
    REQUIRE(mem.has_value());
    return std::move(mem).value();
}

boot::LoadedKernel elf_kernel(uint64_t start, uint64_t end) {
    boot::LoadedKernel k;
    k.format = boot::KernelFormat::elf;
    k.entry = GuestAddress(start);
    k.load_start = GuestAddress(start);
    k.load_end = end;
    return k;
}

boot::LoadedKernel bz_kernel(uint32_t initrd_addr_max, uint32_t cmdline_size = 2047) {
    setup_header hdr{};
    hdr.setup_sects = 27;
    hdr.boot_flag = 0xaa55;
    hdr.header = 0x53726448;
    hdr.version = 0x020f;
    hdr.loadflags = LOADED_HIGH | CAN_USE_HEAP;
    hdr.initrd_addr_max = initrd_addr_max;
    hdr.kernel_alignment = 0x200000;
    hdr.xloadflags = XLF_KERNEL_64;
    hdr.cmdline_size = cmdline_size;
    hdr.init_size = 0x2000000;
    boot::LoadedKernel k;
    k.format = boot::KernelFormat::bzimage;
    k.entry = GuestAddress(0x100200);
    k.load_start = GuestAddress(0x100000);
    k.load_end = 0x3000000;
    k.header = hdr;
    return k;
}

std::vector<std::byte> blob(size_t n) {
    std::vector<std::byte> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = std::byte(static_cast<uint8_t>(i * 31 + 1));
    return v;
}

// Reads a little-endian field of the zero page by its offset in boot.rst, independent
// of the struct definition.
template <typename T>
T zp(const memory::GuestMemory& mem, uint64_t offset) {
    auto v = mem.read_obj<T>(GuestAddress(boot::kZeroPageAddr + offset));
    REQUIRE(v.has_value());
    return *v;
}

std::vector<std::byte> read_guest(const memory::GuestMemory& mem, uint64_t addr, size_t n) {
    std::vector<std::byte> out(n);
    REQUIRE(mem.read(GuestAddress(addr), out).has_value());
    return out;
}

}  // namespace

TEST_CASE("zero page for a vmlinux: fields at their boot-protocol offsets", "[boot]") {
    auto mem = make_memory(512 * MiB);
    auto kernel = elf_kernel(16 * MiB, 20 * MiB);
    auto initrd = blob(10000);
    std::string cmdline = "console=ttyS0 reboot=k panic=1";
    auto e820 = boot::build_e820(mem);
    REQUIRE(boot::write_boot_params(mem, {&kernel, cmdline, initrd, e820}).has_value());

    CHECK(zp<uint16_t>(mem, 0x1fe) == 0xaa55);
    CHECK(zp<uint32_t>(mem, 0x202) == 0x53726448);  // "HdrS"
    CHECK(zp<uint16_t>(mem, 0x206) == 0x020c);
    CHECK(zp<uint8_t>(mem, 0x210) == 0xff);  // type_of_loader
    CHECK((zp<uint8_t>(mem, 0x211) & LOADED_HIGH) != 0);
    CHECK(zp<uint32_t>(mem, 0x228) == boot::kCmdlineAddr);  // cmd_line_ptr
    CHECK(zp<uint32_t>(mem, 0x0c8) == 0);                   // ext_cmd_line_ptr
    CHECK(zp<uint32_t>(mem, 0x230) == 0x1000000);           // kernel_alignment
    CHECK(zp<uint32_t>(mem, 0x238) == 2047);                // cmdline_size

    uint32_t ramdisk = zp<uint32_t>(mem, 0x218);
    CHECK(zp<uint32_t>(mem, 0x21c) == initrd.size());
    CHECK(zp<uint32_t>(mem, 0x0c0) == 0);  // ext_ramdisk_image
    CHECK(zp<uint32_t>(mem, 0x0c4) == 0);  // ext_ramdisk_size
    CHECK(ramdisk % 4096 == 0);
    CHECK(ramdisk >= kernel.load_end);
    CHECK(ramdisk + initrd.size() <= 512 * MiB);
    CHECK(ramdisk + initrd.size() > 512 * MiB - 4096);  // as high as possible
    CHECK(read_guest(mem, ramdisk, initrd.size()) == initrd);

    REQUIRE(zp<uint8_t>(mem, 0x1e8) == e820.size());
    for (size_t i = 0; i < e820.size(); ++i) {
        uint64_t at = 0x2d0 + i * 20;
        CHECK(zp<uint64_t>(mem, at) == e820[i].addr);
        CHECK(zp<uint64_t>(mem, at + 8) == e820[i].size);
        CHECK(zp<uint32_t>(mem, at + 16) == e820[i].type);
    }

    auto line = read_guest(mem, boot::kCmdlineAddr, cmdline.size() + 1);
    CHECK(std::memcmp(line.data(), cmdline.data(), cmdline.size()) == 0);
    CHECK(line.back() == std::byte{0});
}

TEST_CASE("zero page for a bzImage starts from its setup header", "[boot]") {
    auto mem = make_memory(512 * MiB);
    auto kernel = bz_kernel(0x0fffffff);  // initramfs must stay below 256 MiB
    auto initrd = blob(3 * 4096 + 17);
    REQUIRE(boot::write_boot_params(mem, {&kernel, "quiet", initrd, boot::build_e820(mem)})
                .has_value());
    auto bp = mem.read_obj<boot_params>(GuestAddress(boot::kZeroPageAddr));
    REQUIRE(bp.has_value());
    CHECK(bp->hdr.setup_sects == 27);
    CHECK(bp->hdr.version == 0x020f);
    CHECK(bp->hdr.xloadflags == XLF_KERNEL_64);
    CHECK(bp->hdr.loadflags == (LOADED_HIGH | CAN_USE_HEAP));
    CHECK(bp->hdr.init_size == 0x2000000);
    CHECK(bp->hdr.type_of_loader == 0xff);
    CHECK(bp->hdr.cmd_line_ptr == boot::kCmdlineAddr);
    uint64_t ramdisk = bp->hdr.ramdisk_image;
    CHECK(ramdisk % 4096 == 0);
    CHECK(ramdisk >= kernel.load_end);
    CHECK(ramdisk + initrd.size() <= 0x10000000);
    CHECK(ramdisk + initrd.size() > 0x10000000 - 4096);
    CHECK(read_guest(mem, ramdisk, initrd.size()) == initrd);
}

TEST_CASE("initramfs stays below initrd_addr_max with 5 GiB of RAM", "[boot]") {
    auto mem = make_memory(5 * GiB);
    auto kernel = elf_kernel(16 * MiB, 40 * MiB);
    auto where = boot::place_initramfs(mem, kernel, 5 * MiB + 1);
    REQUIRE(where.has_value());
    CHECK(where->raw % 4096 == 0);
    CHECK(where->raw + 5 * MiB + 1 <= 0x80000000);
    CHECK(where->raw + 5 * MiB + 1 > 0x80000000 - 4096);
}

TEST_CASE("initramfs placement fails cleanly when RAM is too small", "[boot]") {
    auto mem = make_memory(32 * MiB);
    auto kernel = elf_kernel(16 * MiB, 30 * MiB);
    SECTION("too big") {
        auto r = boot::write_boot_params(mem, {&kernel, "x", blob(2 * MiB + 1), {}});
        REQUIRE_FALSE(r.has_value());
        CHECK_THAT(r.error().message(),
                   Catch::StartsWith("guest memory (32 MiB) is too small for the kernel and "
                                     "initramfs ("));
        // Validation happens before any write: command line and zero page are untouched.
        CHECK(read_guest(mem, boot::kCmdlineAddr, 1)[0] == std::byte{0});
        CHECK(zp<uint32_t>(mem, 0x202) == 0);
    }
    SECTION("exactly fits between kernel end and top of RAM") {
        auto where = boot::place_initramfs(mem, kernel, 2 * MiB);
        REQUIRE(where.has_value());
        CHECK(where->raw == 30 * MiB);
    }
    SECTION("a size near 2^64 does not wrap") {
        auto where = boot::place_initramfs(mem, kernel, UINT64_MAX - 10);
        CHECK_FALSE(where.has_value());
    }
}

TEST_CASE("kernel command line limits", "[boot]") {
    auto mem = make_memory(64 * MiB);
    auto kernel = elf_kernel(16 * MiB, 20 * MiB);
    std::string longest(2047, 'a');
    REQUIRE(boot::write_boot_params(mem, {&kernel, longest, {}, {}}).has_value());
    auto tail = read_guest(mem, boot::kCmdlineAddr + 2046, 2);
    CHECK(tail[0] == std::byte{'a'});
    CHECK(tail[1] == std::byte{0});
    CHECK(zp<uint32_t>(mem, 0x218) == 0);  // no initramfs
    CHECK(zp<uint32_t>(mem, 0x21c) == 0);

    std::string too_long(2048, 'a');
    auto r = boot::write_boot_params(mem, {&kernel, too_long, {}, {}});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message() == "kernel command line is 2048 bytes; the limit is 2047");

    auto bz = bz_kernel(0x7fffffff, 255);  // the image's own smaller limit wins
    auto r2 = boot::write_boot_params(mem, {&bz, std::string(256, 'b'), {}, {}});
    REQUIRE_FALSE(r2.has_value());
    CHECK(r2.error().message() == "kernel command line is 256 bytes; the limit is 255");

    using namespace std::string_view_literals;
    auto r3 = boot::write_boot_params(mem, {&kernel, "a\0b"sv, {}, {}});
    REQUIRE_FALSE(r3.has_value());
    CHECK_THAT(r3.error().message(), Catch::Contains("NUL"));
}

TEST_CASE("e820 tables larger than the zero page are rejected", "[boot]") {
    auto mem = make_memory(64 * MiB);
    auto kernel = elf_kernel(16 * MiB, 20 * MiB);
    std::vector<boot::E820Entry> map(129, boot::E820Entry{0, 4096, 1});
    auto r = boot::write_boot_params(mem, {&kernel, "", {}, map});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message() == "e820 map has 129 entries; the zero page holds 128");
    map.resize(128);
    CHECK(boot::write_boot_params(mem, {&kernel, "", {}, map}).has_value());
    CHECK(zp<uint8_t>(mem, 0x1e8) == 128);
}
