// A Linux tap interface (/dev/net/tun, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) as the
// backend of a virtio-net device. The fd is nonblocking and close-on-exec; no
// offloads are enabled, matching the features the device offers the guest.
#pragma once

#include <optional>
#include <string>

#include "common/result.h"
#include "common/unique_fd.h"
#include "devices/virtio/net/net_backend.h"

namespace vmm::devices::virtio::net {

// Size of the virtio 1.x net header (virtio_net_hdr_mrg_rxbuf, num_buffers included).
inline constexpr size_t kVnetHdrSize = 12;

class Tap final : public NetBackend {
public:
    // Opens (or creates) the tap `name`; an empty name lets the kernel pick "tapN".
    [[nodiscard]] static Result<Tap> open(std::string name);

    // Sets the host-side IPv4 address and netmask (when given) and brings the link
    // up. Errors read "tap 'tap0': SIOCSIFADDR: Operation not permitted".
    [[nodiscard]] Result<void> configure(const std::optional<std::string>& ip,
                                         const std::optional<std::string>& mask);

    // The interface name the kernel gave the tap.
    const std::string& name() const { return m_name; }

    Result<std::optional<size_t>> read(std::span<const iovec> iov) override;
    Result<size_t> write(std::span<const iovec> iov) override;
    int fd() const override { return m_fd.get(); }

private:
    Tap(UniqueFd fd, std::string name) : m_fd(std::move(fd)), m_name(std::move(name)) {}
    [[nodiscard]] Result<void> set_ipv4(unsigned long request, const char* what,
                                        const std::string& value);
    Error error(std::string_view what) const;

    UniqueFd m_fd;
    std::string m_name;
};

}  // namespace vmm::devices::virtio::net
