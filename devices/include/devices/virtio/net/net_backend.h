// Where a virtio-net device sends and receives Ethernet frames: a tap in the VMM, a
// socketpair in the unit tests. Every frame on the wire of a backend starts with the
// 12-byte virtio_net_hdr (the tap runs with IFF_VNET_HDR), so the device passes
// headers through instead of building them.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <optional>
#include <span>

#include "common/result.h"

namespace vmm::devices::virtio::net {

class NetBackend {
public:
    virtual ~NetBackend() = default;
    // Reads one frame (header included) into `iov`; its length, or nullopt when no
    // frame is waiting (the fd is nonblocking). A frame longer than `iov` is cut short.
    [[nodiscard]] virtual Result<std::optional<size_t>> read(std::span<const iovec> iov) = 0;
    // Writes one frame (header included); the number of bytes written.
    [[nodiscard]] virtual Result<size_t> write(std::span<const iovec> iov) = 0;
    // The fd the event loop watches for EPOLLIN.
    virtual int fd() const = 0;
};

}  // namespace vmm::devices::virtio::net
