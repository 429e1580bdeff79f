// RAII owner of one host mapping that backs a guest RAM region.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/result.h"
#include "common/unique_fd.h"

namespace vmm::memory {

// Guest RAM is managed in 4 KiB pages: region starts/sizes and discards use it.
inline constexpr uint64_t kPageSize = 4096;

enum class Backing {
    anonymous,  // MAP_PRIVATE|MAP_ANONYMOUS: fastest, discard with MADV_DONTNEED
    memfd,      // MAP_SHARED on a memfd: needed when another process shares RAM
};

struct MappingOptions {
    Backing backing = Backing::anonymous;
    bool transparent_huge_pages = true;  // MADV_HUGEPAGE
    bool prefault = false;               // MAP_POPULATE
};

class MmapRegion {
public:
    [[nodiscard]] static Result<MmapRegion> create(uint64_t size, const MappingOptions& options);
    MmapRegion(const MmapRegion&) = delete;
    MmapRegion& operator=(const MmapRegion&) = delete;
    MmapRegion(MmapRegion&& other) noexcept;
    MmapRegion& operator=(MmapRegion&& other) noexcept;
    ~MmapRegion();

    uint64_t size() const { return m_size; }
    Backing backing() const { return m_backing; }
    int memfd() const { return m_memfd.get(); }
    // Host address of byte `offset`; only GuestMemory calls this, after bounds checks.
    std::byte* host_at(uint64_t offset) const { return m_base + offset; }

    // Gives [offset, offset+len) back to the host; reads return zeroes afterwards.
    // offset and len must be page-aligned and inside the mapping; len 0 is a no-op.
    // Backs [offset, offset+len) with writable pages (MADV_POPULATE_WRITE; on kernels
    // before 5.14 a byte compare-and-swap with itself per page, which never changes
    // contents, even while the guest runs). Page-aligned, inside the mapping.
    [[nodiscard]] Result<void> populate(uint64_t offset, uint64_t len) const;
    [[nodiscard]] Result<void> discard(uint64_t offset, uint64_t len) const;

private:
    [[nodiscard]] Result<void> check_window(const char* what, uint64_t offset, uint64_t len) const;
    MmapRegion(std::byte* base, uint64_t size, Backing backing, UniqueFd memfd)
        : m_base(base), m_size(size), m_backing(backing), m_memfd(std::move(memfd)) {}
    void unmap();

    std::byte* m_base = nullptr;
    uint64_t m_size = 0;
    Backing m_backing = Backing::anonymous;
    UniqueFd m_memfd;
};

}  // namespace vmm::memory
