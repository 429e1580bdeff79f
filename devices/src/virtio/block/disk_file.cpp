#include "devices/virtio/block/disk_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "common/log.h"

namespace vmm::devices::virtio {

namespace {

// Walks a list of guest slices as one byte stream (for bounce-buffer copies).
class SliceCursor {
public:
    explicit SliceCursor(std::span<const memory::VolatileSlice> slices) : m_slices(slices) {}

    // Copies between the stream and `host`, advancing the cursor. The caller never
    // asks for more than the slices hold (it sized the transfer from them).
    void copy_out(std::span<std::byte> host) { walk(host.size(), [&](auto& s, size_t done) {
        s.copy_to(host.subspan(done, s.size()));
    }); }
    void copy_in(std::span<const std::byte> host) { walk(host.size(), [&](auto& s, size_t done) {
        s.copy_from(host.subspan(done, s.size()));
    }); }

private:
    template <typename Fn>
    void walk(size_t len, Fn&& fn) {
        size_t done = 0;
        while (done < len && m_index < m_slices.size()) {
            const auto& slice = m_slices[m_index];
            uint64_t n = std::min<uint64_t>(len - done, slice.size() - m_offset);
            auto sub = slice.subslice(m_offset, n);
            if (sub) fn(*sub, done);  // cannot fail: n fits by construction
            done += n;
            m_offset += n;
            if (m_offset == slice.size()) {
                ++m_index;
                m_offset = 0;
            }
        }
    }

    std::span<const memory::VolatileSlice> m_slices;
    size_t m_index = 0;
    uint64_t m_offset = 0;
};

uint64_t total_size(std::span<const memory::VolatileSlice> buffers) {
    uint64_t total = 0;
    for (const auto& b : buffers) total += b.size();
    return total;
}

// preadv/pwritev over all of `iov`, retrying on EINTR and short transfers.
Result<void> transfer_iov(int fd, std::vector<iovec> iov, uint64_t offset, bool is_write) {
    size_t first = 0;
    while (first < iov.size()) {
        if (iov[first].iov_len == 0) {
            ++first;
            continue;
        }
        int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
        auto pos = static_cast<off_t>(offset);
        ssize_t n = is_write ? ::pwritev(fd, &iov[first], count, pos)
                             : ::preadv(fd, &iov[first], count, pos);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno(is_write ? "pwritev" : "preadv");
        if (n == 0) return Error::msg("{}: unexpected end of file at offset {}",
                                      is_write ? "pwritev" : "preadv", offset);
        offset += static_cast<uint64_t>(n);
        auto left = static_cast<size_t>(n);
        while (left > 0) {
            size_t step = std::min(left, iov[first].iov_len);
            iov[first].iov_base = static_cast<std::byte*>(iov[first].iov_base) + step;
            iov[first].iov_len -= step;
            left -= step;
            if (iov[first].iov_len == 0) ++first;
        }
    }
    return ok();
}

Result<void> transfer_all(int fd, std::span<std::byte> buf, uint64_t offset, bool is_write) {
    return transfer_iov(fd, {iovec{buf.data(), buf.size()}}, offset, is_write);
}

}  // namespace

void DiskFile::FreeDeleter::operator()(std::byte* p) const { std::free(p); }

Result<DiskFile> DiskFile::open(const std::string& path, bool readonly, bool direct) {
    int flags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0);
    UniqueFd fd(::open(path.c_str(), flags));
    if (!fd) return Error::from_errno(fmt::format("opening disk image {}", path));
    // SEEK_END works for regular files and block devices alike.
    off_t size = ::lseek(fd.get(), 0, SEEK_END);
    if (size < 0) return Error::from_errno(fmt::format("sizing disk image {}", path));
    auto bytes = static_cast<uint64_t>(size);
    if (bytes % kSectorSize != 0) {
        log::warn("disk image {}: size {} is not a multiple of {}; the last {} bytes are "
                  "not visible to the guest", path, bytes, kSectorSize, bytes % kSectorSize);
    }
    AlignedBuffer bounce;
    if (direct) {
        void* p = nullptr;
        if (int e = ::posix_memalign(&p, kBounceAlign, kBounceSize); e != 0) {
            return Error("allocating the O_DIRECT bounce buffer failed", e);
        }
        bounce.reset(static_cast<std::byte*>(p));
    }
    return DiskFile(std::move(fd), bytes / kSectorSize, readonly, direct, std::move(bounce));
}

Result<void> DiskFile::read(uint64_t offset, std::span<const memory::VolatileSlice> buffers) {
    if (m_direct) return transfer_direct(offset, buffers, false);
    std::vector<iovec> iov;
    iov.reserve(buffers.size());
    for (const auto& b : buffers) iov.push_back(b.as_iovec());
    return transfer_iov(m_fd.get(), std::move(iov), offset, false);
}

Result<void> DiskFile::write(uint64_t offset, std::span<const memory::VolatileSlice> buffers) {
    if (m_readonly) return Error("write to a read-only disk");
    if (m_direct) return transfer_direct(offset, buffers, true);
    std::vector<iovec> iov;
    iov.reserve(buffers.size());
    for (const auto& b : buffers) iov.push_back(b.as_iovec());
    return transfer_iov(m_fd.get(), std::move(iov), offset, true);
}

Result<void> DiskFile::transfer_direct(uint64_t offset,
                                       std::span<const memory::VolatileSlice> buffers,
                                       bool is_write) {
    SliceCursor cursor(buffers);
    uint64_t remaining = total_size(buffers);
    while (remaining > 0) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(remaining, kBounceSize));
        std::span<std::byte> bounce(m_bounce.get(), chunk);
        if (is_write) {
            cursor.copy_out(bounce);
            VMM_TRY(transfer_all(m_fd.get(), bounce, offset, true));
        } else {
            VMM_TRY(transfer_all(m_fd.get(), bounce, offset, false));
            cursor.copy_in(bounce);
        }
        offset += chunk;
        remaining -= chunk;
    }
    return ok();
}

Result<void> DiskFile::flush() {
    if (::fdatasync(m_fd.get()) != 0) return Error::from_errno("fdatasync");
    return ok();
}

Result<void> append_slices(const memory::GuestMemory& mem, memory::GuestAddress addr,
                           uint64_t len, std::vector<memory::VolatileSlice>& out) {
    while (len > 0) {
        uint64_t chunk = 0;
        for (const auto& region : mem.regions()) {
            if (region.range().contains(addr, 1)) {
                chunk = std::min(len, region.start().raw + region.size() - addr.raw);
                break;
            }
        }
        if (chunk == 0) return Error::msg("guest range {:#x}+{:#x} is not RAM", addr.raw, len);
        out.push_back(VMM_TRY(mem.slice(addr, chunk)));
        addr = addr.unchecked_add(chunk);  // inside RAM, so no wrap
        len -= chunk;
    }
    return ok();
}

}  // namespace vmm::devices::virtio
