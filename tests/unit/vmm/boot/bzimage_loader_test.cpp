#include <asm/bootparam.h>

#include <catch2/catch.hpp>
#include <cstring>
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

struct BzParams {
    uint16_t version = 0x020f;
    uint16_t xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
    uint8_t setup_sects = 27;
    size_t payload_size = 0x5000;
    uint32_t init_size = 0x2000000;      // 32 MiB
    uint64_t pref_address = 0x1000000;   // 16 MiB (LOAD_PHYSICAL_ADDR)
    uint32_t kernel_alignment = 0x200000;
    uint8_t relocatable = 1;
    uint8_t header_len_byte = 0x6a;      // 0x202 + 0x6a = 0x26c: a 2.15 header
};

uint8_t payload_byte(size_t i) { return static_cast<uint8_t>(i * 13 + 5); }

// Setup sectors with the header at 0x1f1, then the protected-mode payload.
std::vector<std::byte> make_bzimage(const BzParams& p) {
    unsigned sects = p.setup_sects == 0 ? 4 : p.setup_sects;
    size_t payload_offset = (sects + 1) * 512;
    std::vector<std::byte> image(payload_offset + p.payload_size, std::byte{0xcc});
    setup_header hdr{};
    hdr.setup_sects = p.setup_sects;
    hdr.boot_flag = 0xaa55;
    hdr.jump = static_cast<uint16_t>(0xeb | (p.header_len_byte << 8));
    hdr.header = 0x53726448;
    hdr.version = p.version;
    hdr.loadflags = LOADED_HIGH;
    hdr.cmdline_size = 2047;
    hdr.initrd_addr_max = 0x7fffffff;
    hdr.kernel_alignment = p.kernel_alignment;
    hdr.relocatable_kernel = p.relocatable;
    hdr.xloadflags = p.xloadflags;
    hdr.pref_address = p.pref_address;
    hdr.init_size = p.init_size;
    hdr.kernel_info_offset = 0x1234;
    std::memcpy(image.data() + 0x1f1, &hdr, sizeof(hdr));
    for (size_t i = 0; i < p.payload_size; ++i) {
        image[payload_offset + i] = std::byte(payload_byte(i));
    }
    return image;
}

std::string load_error(const std::vector<std::byte>& image, uint64_t ram = 512 * MiB) {
    auto mem = make_memory(ram);
    auto r = boot::load_kernel(mem, image);
    REQUIRE_FALSE(r.has_value());
    return r.error().message();
}

}  // namespace

TEST_CASE("bzImage loader loads a v2.15 64-bit image at 1 MiB", "[boot]") {
    auto mem = make_memory(512 * MiB);
    BzParams p;
    auto image = make_bzimage(p);
    auto r = boot::load_kernel(mem, image);
    REQUIRE(r.has_value());
    CHECK(r->format == boot::KernelFormat::bzimage);
    CHECK(r->load_start == GuestAddress(0x100000));
    CHECK(r->entry == GuestAddress(0x100200));
    // Relocatable, loaded at 1 MiB: head_64.S decompresses at max(align_up(1 MiB, 2 MiB),
    // pref_address) = 16 MiB, using init_size bytes from there.
    CHECK(r->load_end == 0x1000000 + 0x2000000);
    REQUIRE(r->header.has_value());
    CHECK(uint16_t{r->header->version} == 0x020f);  // a copy: the header is packed
    CHECK(r->header->setup_sects == 27);
    CHECK((r->header->xloadflags & XLF_KERNEL_64) != 0);
    CHECK(uint32_t{r->header->kernel_info_offset} == 0x1234);

    std::vector<std::byte> got(p.payload_size);
    REQUIRE(mem.read(GuestAddress(0x100000), got).has_value());
    for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] != std::byte(payload_byte(i))) FAIL("payload byte " << i << " differs");
    }
}

TEST_CASE("bzImage loader computes the kernel footprint from the header", "[boot]") {
    auto mem = make_memory(512 * MiB);
    SECTION("relocatable, pref_address below the aligned load address") {
        BzParams p;
        p.pref_address = 0x100000;
        auto r = boot::load_kernel(mem, make_bzimage(p));
        REQUIRE(r.has_value());
        CHECK(r->load_end == 0x200000 + 0x2000000);  // align_up(1 MiB, 2 MiB) + init_size
    }
    SECTION("not relocatable: decompressed at pref_address") {
        BzParams p;
        p.relocatable = 0;
        p.pref_address = 0x2000000;
        auto r = boot::load_kernel(mem, make_bzimage(p));
        REQUIRE(r.has_value());
        CHECK(r->load_start == GuestAddress(0x100000));  // still loaded at 1 MiB
        CHECK(r->load_end == 0x2000000 + 0x2000000);
    }
    SECTION("payload larger than the decompression footprint") {
        BzParams p;
        p.init_size = 0x1000;
        p.pref_address = 0x100000;
        p.kernel_alignment = 0x1000;
        p.payload_size = 0x3000;
        auto r = boot::load_kernel(mem, make_bzimage(p));
        REQUIRE(r.has_value());
        CHECK(r->load_end == 0x100000 + 0x3000);
    }
    SECTION("setup_sects 0 means 4") {
        BzParams p;
        p.setup_sects = 0;
        auto image = make_bzimage(p);
        REQUIRE(image.size() == 5 * 512 + p.payload_size);
        auto r = boot::load_kernel(mem, image);
        REQUIRE(r.has_value());
        CHECK(r->header->setup_sects == 4);
        auto first = mem.read_obj<uint8_t>(GuestAddress(0x100000));
        REQUIRE(first.has_value());
        CHECK(*first == payload_byte(0));
    }
    SECTION("a 2.12 header is only as long as it says") {
        BzParams p;
        p.version = 0x020c;
        p.header_len_byte = 0x66;  // ends at 0x268: no kernel_info_offset
        auto r = boot::load_kernel(mem, make_bzimage(p));
        REQUIRE(r.has_value());
        CHECK(uint32_t{r->header->kernel_info_offset} == 0);
        CHECK(uint32_t{r->header->init_size} == p.init_size);
    }
}

TEST_CASE("bzImage loader rejects unusable images", "[boot]") {
    SECTION("boot protocol too old") {
        BzParams p;
        p.version = 0x020b;
        CHECK(load_error(make_bzimage(p)) ==
              "bzImage boot protocol 2.11 is too old; 2.12 or newer is needed");
    }
    SECTION("no 64-bit entry") {
        BzParams p;
        p.xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
        CHECK_THAT(load_error(make_bzimage(p)), Catch::Contains("XLF_KERNEL_64 not set"));
    }
    SECTION("truncated before the end of the header") {
        auto image = make_bzimage(BzParams{});
        image.resize(0x200);
        CHECK_THAT(load_error(image), Catch::Contains("truncated bzImage"));
    }
    SECTION("truncated: no payload after the setup sectors") {
        auto image = make_bzimage(BzParams{});
        image.resize(28 * 512);
        CHECK_THAT(load_error(image), Catch::Contains("truncated bzImage"));
    }
    SECTION("no HdrS magic") {
        auto image = make_bzimage(BzParams{});
        image[0x202] = std::byte{'X'};
        CHECK_THAT(load_error(image), Catch::Contains("no \"HdrS\""));
    }
    SECTION("tiny files are not a crash") {
        CHECK_THAT(load_error({}), Catch::Contains("truncated bzImage"));
        CHECK_THAT(load_error({std::byte{0x7f}, std::byte{'E'}}), Catch::Contains("truncated"));
    }
    SECTION("bad kernel_alignment") {
        BzParams p;
        p.kernel_alignment = 0x300000;
        CHECK_THAT(load_error(make_bzimage(p)), Catch::Contains("not a power of two"));
    }
    SECTION("init_size too large for RAM") {
        BzParams p;
        p.init_size = 0x20000000;  // 512 MiB from 16 MiB does not fit in 512 MiB
        CHECK_THAT(load_error(make_bzimage(p)),
                   Catch::StartsWith("guest memory (512 MiB) is too small for the bzImage"));
        auto mem = make_memory(512 * MiB);
        REQUIRE_FALSE(boot::load_kernel(mem, make_bzimage(p)).has_value());
        auto first = mem.read_obj<uint8_t>(GuestAddress(0x100000));
        REQUIRE(first.has_value());
        CHECK(*first == 0);  // nothing was written
    }
}
