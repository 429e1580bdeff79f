#include "memory/mmap_region.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <utility>

#include "common/log.h"

namespace vmm::memory {

namespace {

bool page_aligned(uint64_t value) { return value % kPageSize == 0; }

// Creates the memfd that backs a shared region, sized to `size`.
Result<UniqueFd> create_memfd(uint64_t size) {
    UniqueFd fd(::memfd_create("guest-ram", MFD_CLOEXEC));
    if (!fd) return Error::from_errno("memfd_create(guest-ram)");
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
        return Error::from_errno(fmt::format("ftruncate(guest-ram, {:#x})", size));
    }
    return fd;
}

}  // namespace

// MADV_POPULATE_WRITE (Linux 5.14); older C library headers lack the name.
#ifdef MADV_POPULATE_WRITE
constexpr int kMadvPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kMadvPopulateWrite = 23;
#endif

Result<MmapRegion> MmapRegion::create(uint64_t size, const MappingOptions& options) {
    // off_t is signed: a size above INT64_MAX could not be a memfd length either.
    if (size == 0 || !page_aligned(size) || size > static_cast<uint64_t>(INT64_MAX)) {
        return Error::msg("guest RAM mapping size {:#x} must be a non-zero multiple of {:#x}",
                          size, kPageSize);
    }
    UniqueFd memfd;
    int flags = MAP_NORESERVE;
    if (options.backing == Backing::memfd) {
        memfd = VMM_TRY(create_memfd(size));
        flags |= MAP_SHARED;
    } else {
        flags |= MAP_PRIVATE | MAP_ANONYMOUS;
    }
    void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, memfd.get(), 0);
    if (base == MAP_FAILED) {
        return Error::from_errno(fmt::format("mmap of {:#x} bytes of guest RAM", size));
    }
    if (options.transparent_huge_pages && ::madvise(base, size, MADV_HUGEPAGE) != 0) {
        // Huge pages only speed things up; a host with THP disabled still runs guests.
        log::warn("madvise(MADV_HUGEPAGE) on guest RAM failed: {}", std::strerror(errno));
    }
    // Populate only after MADV_HUGEPAGE: MAP_POPULATE at mmap time would fault in
    // 4 KiB pages before the advice exists, and every later discard, install and guest
    // access would then work on 4 KiB pages.
    MmapRegion region(static_cast<std::byte*>(base), size, options.backing, std::move(memfd));
    if (options.prefault) VMM_TRY_CTX(region.populate(0, size), "prefaulting guest RAM");
    return region;
}

MmapRegion::MmapRegion(MmapRegion&& other) noexcept
    : m_base(std::exchange(other.m_base, nullptr)),
      m_size(std::exchange(other.m_size, 0)),
      m_backing(other.m_backing),
      m_memfd(std::move(other.m_memfd)) {}

MmapRegion& MmapRegion::operator=(MmapRegion&& other) noexcept {
    if (this != &other) {
        unmap();
        m_base = std::exchange(other.m_base, nullptr);
        m_size = std::exchange(other.m_size, 0);
        m_backing = other.m_backing;
        m_memfd = std::move(other.m_memfd);
    }
    return *this;
}

MmapRegion::~MmapRegion() { unmap(); }

void MmapRegion::unmap() {
    if (m_base != nullptr) ::munmap(m_base, m_size);
    m_base = nullptr;
    m_size = 0;
    m_memfd.reset();
}

Result<void> MmapRegion::check_window(const char* what, uint64_t offset, uint64_t len) const {
    if (!page_aligned(offset) || !page_aligned(len)) {
        return Error::msg("{} [{:#x}, +{:#x}) is not page-aligned", what, offset, len);
    }
    if (offset > m_size || len > m_size - offset) {
        return Error::msg("{} [{:#x}, +{:#x}) exceeds the {:#x}-byte mapping", what, offset,
                          len, m_size);
    }
    return ok();
}

Result<void> MmapRegion::populate(uint64_t offset, uint64_t len) const {
    VMM_TRY(check_window("populate", offset, len));
    if (len == 0) return ok();
    std::byte* host = m_base + offset;
    // The kernel may stop early on a pending signal (EINTR) or transient
    // contention (EAGAIN); what it already populated stays, so retrying is cheap.
    for (int attempt = 0; attempt < 8; ++attempt) {
        if (::madvise(host, len, kMadvPopulateWrite) == 0) return ok();
        if (errno != EINTR && errno != EAGAIN) break;
    }
    if (errno != EINVAL) return Error::from_errno("madvise(MADV_POPULATE_WRITE) on guest RAM");
    // Kernels before 5.14 do not know MADV_POPULATE_WRITE: write-fault each page in.
    // A compare-and-swap of a byte with itself writes without changing anything, even
    // while the guest writes the same byte (then the CAS fails, but the page is
    // already backed by the guest's own write).
    for (uint64_t done = 0; done < len; done += kPageSize) {
        std::atomic_ref<uint8_t> byte(*reinterpret_cast<uint8_t*>(host + done));
        uint8_t value = byte.load(std::memory_order_relaxed);
        byte.compare_exchange_strong(value, value, std::memory_order_relaxed);
    }
    return ok();
}

Result<void> MmapRegion::discard(uint64_t offset, uint64_t len) const {
    VMM_TRY(check_window("discard", offset, len));
    if (len == 0) return ok();
    if (m_backing == Backing::anonymous) {
        // MADV_DONTNEED on a private anonymous mapping drops the pages: later reads
        // fault in fresh zero pages.
        if (::madvise(m_base + offset, len, MADV_DONTNEED) != 0) {
            return Error::from_errno("madvise(MADV_DONTNEED) on guest RAM");
        }
        return ok();
    }
    // A shared mapping keeps the file's pages; the hole must be punched in the file.
    if (::fallocate(m_memfd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(offset), static_cast<off_t>(len)) != 0) {
        return Error::from_errno("fallocate(PUNCH_HOLE) on guest RAM memfd");
    }
    return ok();
}

}  // namespace vmm::memory
