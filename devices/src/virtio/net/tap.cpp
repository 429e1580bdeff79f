#include "devices/virtio/net/tap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <climits>
#include <cstring>

namespace vmm::devices::virtio::net {

namespace {

// ifreq naming `name`; the caller has checked that it fits.
ifreq make_ifreq(const std::string& name) {
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, name.data(), name.size());
    return ifr;
}

}  // namespace

Error Tap::error(std::string_view what) const {
    return Error::from_errno(fmt::format("tap '{}': {}", m_name, what));
}

Result<Tap> Tap::open(std::string name) {
    if (name.size() >= IFNAMSIZ) {
        return Error::msg("tap '{}': name longer than {} characters", name, IFNAMSIZ - 1);
    }
    Tap tap(UniqueFd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)), std::move(name));
    if (!tap.m_fd) return tap.error("open /dev/net/tun");

    ifreq ifr = make_ifreq(tap.m_name);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (::ioctl(tap.m_fd.get(), TUNSETIFF, &ifr) < 0) return tap.error("TUNSETIFF");
    // The kernel fills in the name it chose ("tap%d" when ours was empty).
    tap.m_name.assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));

    int hdr_size = static_cast<int>(kVnetHdrSize);
    if (::ioctl(tap.m_fd.get(), TUNSETVNETHDRSZ, &hdr_size) < 0) {
        return tap.error("TUNSETVNETHDRSZ");
    }
    // No checksum/segmentation offloads: the guest is offered none either, so every
    // frame crossing the tap is complete and its header flags are 0.
    if (::ioctl(tap.m_fd.get(), TUNSETOFFLOAD, 0UL) < 0) return tap.error("TUNSETOFFLOAD");
    return tap;
}

Result<void> Tap::set_ipv4(unsigned long request, const char* what, const std::string& value) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    if (::inet_pton(AF_INET, value.c_str(), &addr.sin_addr) != 1) {
        return Error::msg("tap '{}': invalid IPv4 {} '{}'", m_name, what, value);
    }
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) return error("socket(AF_INET)");
    ifreq ifr = make_ifreq(m_name);
    static_assert(sizeof(addr) <= sizeof(ifr.ifr_addr));
    std::memcpy(&ifr.ifr_addr, &addr, sizeof(addr));
    if (::ioctl(sock.get(), request, &ifr) < 0) {
        return error(request == SIOCSIFADDR ? "SIOCSIFADDR" : "SIOCSIFNETMASK");
    }
    return ok();
}

Result<void> Tap::configure(const std::optional<std::string>& ip,
                            const std::optional<std::string>& mask) {
    if (ip) VMM_TRY(set_ipv4(SIOCSIFADDR, "address", *ip));
    if (mask) VMM_TRY(set_ipv4(SIOCSIFNETMASK, "netmask", *mask));

    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) return error("socket(AF_INET)");
    ifreq ifr = make_ifreq(m_name);
    if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) < 0) return error("SIOCGIFFLAGS");
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) < 0) return error("SIOCSIFFLAGS");
    return ok();
}

Result<std::optional<size_t>> Tap::read(std::span<const iovec> iov) {
    if (iov.size() > IOV_MAX) return Error::msg("tap '{}': too many buffers", m_name);
    ssize_t n;
    do {
        n = ::readv(m_fd.get(), iov.data(), static_cast<int>(iov.size()));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::optional<size_t>{};
        return error("read");
    }
    return std::optional<size_t>(static_cast<size_t>(n));
}

Result<size_t> Tap::write(std::span<const iovec> iov) {
    if (iov.size() > IOV_MAX) return Error::msg("tap '{}': too many buffers", m_name);
    ssize_t n;
    do {
        n = ::writev(m_fd.get(), iov.data(), static_cast<int>(iov.size()));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return error("write");
    return static_cast<size_t>(n);
}

}  // namespace vmm::devices::virtio::net
