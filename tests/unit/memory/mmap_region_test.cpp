#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "memory/mmap_region.h"

using vmm::memory::Backing;
using vmm::memory::kPageSize;
using vmm::memory::MappingOptions;
using vmm::memory::MmapRegion;

namespace {

// msync fails with ENOMEM on an address with no mapping: how a test sees munmap.
bool is_mapped(const void* addr) {
    return ::msync(const_cast<void*>(addr), kPageSize, MS_ASYNC) == 0;
}

MmapRegion make(uint64_t size, Backing backing, bool prefault = false) {
    auto r = MmapRegion::create(size, {.backing = backing, .prefault = prefault});
    REQUIRE(r.has_value());
    return std::move(r).value();
}

bool all_zero(const std::byte* p, uint64_t len) {
    for (uint64_t i = 0; i < len; ++i) {
        if (p[i] != std::byte{0}) return false;
    }
    return true;
}

}  // namespace

TEST_CASE("MmapRegion rejects zero and unaligned sizes", "[memory][mmap]") {
    auto backing = GENERATE(Backing::anonymous, Backing::memfd);
    for (uint64_t size : {uint64_t{0}, uint64_t{1}, kPageSize - 1, kPageSize + 512}) {
        auto r = MmapRegion::create(size, {.backing = backing});
        REQUIRE_FALSE(r.has_value());
        CHECK_THAT(r.error().message(), Catch::Contains("multiple of"));
    }
}

TEST_CASE("MmapRegion maps zeroed, writable memory of the requested size", "[memory][mmap]") {
    auto backing = GENERATE(Backing::anonymous, Backing::memfd);
    auto prefault = GENERATE(false, true);
    MmapRegion region = make(4 * kPageSize, backing, prefault);
    CHECK(region.size() == 4 * kPageSize);
    CHECK(region.backing() == backing);
    CHECK((region.memfd() >= 0) == (backing == Backing::memfd));
    CHECK(all_zero(region.host_at(0), region.size()));
    std::memset(region.host_at(kPageSize), 0x5a, kPageSize);
    CHECK(region.host_at(kPageSize)[kPageSize - 1] == std::byte{0x5a});
}

TEST_CASE("MmapRegion works without transparent huge pages", "[memory][mmap]") {
    auto r = MmapRegion::create(kPageSize, {.transparent_huge_pages = false});
    REQUIRE(r.has_value());
    r->host_at(0)[0] = std::byte{1};
    CHECK(r->host_at(0)[0] == std::byte{1});
}

TEST_CASE("memfd-backed region shares its pages with the memfd", "[memory][mmap]") {
    MmapRegion region = make(2 * kPageSize, Backing::memfd);
    std::memcpy(region.host_at(kPageSize + 8), "guest", 5);
    char buf[5] = {};
    REQUIRE(::pread(region.memfd(), buf, sizeof buf, static_cast<off_t>(kPageSize + 8)) == 5);
    CHECK(std::memcmp(buf, "guest", 5) == 0);
    CHECK(::lseek(region.memfd(), 0, SEEK_END) == static_cast<off_t>(2 * kPageSize));
}

TEST_CASE("MmapRegion move leaves the source empty and unmaps once", "[memory][mmap]") {
    auto backing = GENERATE(Backing::anonymous, Backing::memfd);
    MmapRegion a = make(2 * kPageSize, backing);
    std::byte* base = a.host_at(0);
    int fd = a.memfd();
    base[0] = std::byte{7};

    MmapRegion b(std::move(a));
    CHECK(a.size() == 0);  // NOLINT(bugprone-use-after-move): moved-from state is specified
    CHECK(a.memfd() == -1);
    CHECK(a.host_at(0) == nullptr);
    CHECK(b.host_at(0) == base);
    CHECK(b.memfd() == fd);
    CHECK(b.size() == 2 * kPageSize);
    CHECK(b.host_at(0)[0] == std::byte{7});

    MmapRegion c = make(kPageSize, Backing::anonymous);
    std::byte* c_base = c.host_at(0);
    c = std::move(b);
    CHECK_FALSE(is_mapped(c_base));  // c's old mapping was released by the assignment
    CHECK(c.host_at(0) == base);
    CHECK(b.size() == 0);  // NOLINT(bugprone-use-after-move)
    CHECK(is_mapped(base));
}

TEST_CASE("MmapRegion destructor unmaps and closes the memfd", "[memory][mmap]") {
    std::byte* base = nullptr;
    int fd = -1;
    {
        MmapRegion region = make(kPageSize, Backing::memfd);
        base = region.host_at(0);
        fd = region.memfd();
        CHECK(is_mapped(base));
        CHECK(::fcntl(fd, F_GETFD) >= 0);
    }
    CHECK_FALSE(is_mapped(base));
    CHECK(::fcntl(fd, F_GETFD) == -1);
}

TEST_CASE("MmapRegion discard zeroes exactly the range for both backings", "[memory][mmap]") {
    auto backing = GENERATE(Backing::anonymous, Backing::memfd);
    MmapRegion region = make(4 * kPageSize, backing);
    std::memset(region.host_at(0), 0xab, region.size());

    REQUIRE(region.discard(kPageSize, 2 * kPageSize).has_value());
    CHECK(all_zero(region.host_at(kPageSize), 2 * kPageSize));
    CHECK(region.host_at(kPageSize - 1)[0] == std::byte{0xab});
    CHECK(region.host_at(3 * kPageSize)[0] == std::byte{0xab});
    CHECK(region.size() == 4 * kPageSize);
    // The memory is usable again after a discard.
    region.host_at(kPageSize)[0] = std::byte{3};
    CHECK(region.host_at(kPageSize)[0] == std::byte{3});
    CHECK(region.discard(0, 0).has_value());
}

TEST_CASE("MmapRegion discard rejects unaligned and out-of-range requests", "[memory][mmap]") {
    auto backing = GENERATE(Backing::anonymous, Backing::memfd);
    MmapRegion region = make(2 * kPageSize, backing);
    std::memset(region.host_at(0), 0x11, region.size());
    CHECK_FALSE(region.discard(1, kPageSize).has_value());
    CHECK_FALSE(region.discard(0, kPageSize + 1).has_value());
    CHECK_FALSE(region.discard(kPageSize, 2 * kPageSize).has_value());
    CHECK_FALSE(region.discard(3 * kPageSize, 0).has_value());
    CHECK_FALSE(region.discard(kPageSize, UINT64_MAX - kPageSize + 1).has_value());
    // A rejected discard left the contents alone.
    CHECK(region.host_at(kPageSize)[0] == std::byte{0x11});
}
