// The host side of a virtio-blk device: a raw image file (or block device) read and
// written at sector granularity, straight into guest buffers. With O_DIRECT the
// kernel wants aligned memory, which guest buffers need not be, so direct I/O goes
// through a fixed-size aligned bounce buffer: host memory stays bounded whatever
// the guest asks for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "memory/guest_memory.h"

namespace vmm::devices::virtio {

inline constexpr uint64_t kSectorSize = 512;

class DiskFile {
public:
    // Bounce buffer for O_DIRECT: a multiple of 4 KiB so every chunk but the last
    // stays aligned for disks with 4 KiB logical blocks too.
    static constexpr size_t kBounceSize = 256 * 1024;
    static constexpr size_t kBounceAlign = 4096;

    [[nodiscard]] static Result<DiskFile> open(const std::string& path, bool readonly,
                                               bool direct);

    uint64_t capacity_sectors() const { return m_capacity_sectors; }
    bool readonly() const { return m_readonly; }
    bool direct() const { return m_direct; }

    // Transfer sum(buffers) bytes at byte `offset`. Callers have checked that the
    // range lies inside the capacity and that offset and length are multiples of
    // kSectorSize.
    [[nodiscard]] Result<void> read(uint64_t offset,
                                    std::span<const memory::VolatileSlice> buffers);
    [[nodiscard]] Result<void> write(uint64_t offset,
                                     std::span<const memory::VolatileSlice> buffers);
    [[nodiscard]] Result<void> flush();

private:
    struct FreeDeleter {
        void operator()(std::byte* p) const;
    };
    using AlignedBuffer = std::unique_ptr<std::byte, FreeDeleter>;

    DiskFile(UniqueFd fd, uint64_t capacity_sectors, bool readonly, bool direct,
             AlignedBuffer bounce)
        : m_fd(std::move(fd)), m_capacity_sectors(capacity_sectors), m_readonly(readonly),
          m_direct(direct), m_bounce(std::move(bounce)) {}

    [[nodiscard]] Result<void> transfer_direct(uint64_t offset,
                                               std::span<const memory::VolatileSlice> buffers,
                                               bool is_write);

    UniqueFd m_fd;
    uint64_t m_capacity_sectors;
    bool m_readonly;
    bool m_direct;
    AlignedBuffer m_bounce;  // only with O_DIRECT
};

// Splits the guest range [addr, addr+len) at region boundaries into slices
// (a descriptor may span two adjacent RAM regions; a slice may not).
[[nodiscard]] Result<void> append_slices(const memory::GuestMemory& mem,
                                         memory::GuestAddress addr, uint64_t len,
                                         std::vector<memory::VolatileSlice>& out);

}  // namespace vmm::devices::virtio
