// Checks our Tap against the kernel, inside the network namespace tap_smoke.sh made:
// open + configure 10.200.0.1/24, the link is up with that address, a frame the
// host stack sends (an ARP request for 10.200.0.2) comes out of the tap fd behind a
// 12-byte vnet header, and a frame written into the tap fd reaches the host stack.
// Exit 0 pass, 1 fail, 77 skip.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "devices/virtio/net/tap.h"

using namespace vmm;
using namespace vmm::devices::virtio::net;

namespace {

constexpr const char* kTapName = "vmmtap0";
constexpr uint16_t kTestEtherType = 0x88b5;  // IEEE "local experimental"
int g_failures = 0;

void check(bool ok, const char* what) {
    std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) ++g_failures;
}

std::string ifreq_ipv4(int sock, unsigned long request) {
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, kTapName, IFNAMSIZ - 1);
    if (::ioctl(sock, request, &ifr) < 0) return "ioctl failed";
    sockaddr_in sin{};
    std::memcpy(&sin, &ifr.ifr_addr, sizeof(sin));
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text));
    return text;
}

bool wait_readable(int fd, std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(left.count())) == 1;
}

uint16_t be16_at(const std::vector<uint8_t>& b, size_t at) {
    return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}

// Host -> tap: a UDP datagram to a neighbour nobody has resolved makes the kernel
// send an ARP request out of the tap.
void check_host_to_tap(Tap& tap) {
    UniqueFd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    ::inet_pton(AF_INET, "10.200.0.2", &to.sin_addr);
    const char msg[] = "hello";
    ssize_t sent = ::sendto(udp.get(), msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&to),
                            sizeof(to));
    check(sent == sizeof(msg), "UDP datagram to 10.200.0.2 queued");

    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool found = false;
    while (!found && wait_readable(tap.fd(), deadline)) {
        std::vector<uint8_t> buf(2048);
        iovec iov{buf.data(), buf.size()};
        auto got = tap.read(std::span(&iov, 1));
        if (!got || !*got) continue;
        buf.resize(**got);
        // [0,12) vnet header, [12,26) Ethernet header, then the ARP packet.
        if (buf.size() < 12 + 14 + 28 || be16_at(buf, 12 + 12) != ETHERTYPE_ARP) continue;
        const uint8_t* arp = buf.data() + 26;
        uint8_t want_target[4] = {10, 200, 0, 2};
        uint8_t want_sender[4] = {10, 200, 0, 1};
        found = be16_at(buf, 26 + 6) == 1 /* request */ &&
                std::memcmp(arp + 24, want_target, 4) == 0 &&
                std::memcmp(arp + 14, want_sender, 4) == 0;
        check(std::vector<uint8_t>(buf.begin(), buf.begin() + 12) == std::vector<uint8_t>(12),
              "vnet header of a host frame is all zero (no offloads)");
    }
    check(found, "ARP request for 10.200.0.2 from 10.200.0.1 read from the tap fd");
}

// Tap -> host: a frame written into the tap fd arrives on a packet socket.
void check_tap_to_host(Tap& tap) {
    UniqueFd raw(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
    check(raw.valid(), "AF_PACKET socket");
    if (!raw) return;
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_ALL);
    ll.sll_ifindex = static_cast<int>(::if_nametoindex(kTapName));
    check(::bind(raw.get(), reinterpret_cast<sockaddr*>(&ll), sizeof(ll)) == 0,
          "packet socket bound to the tap");

    std::vector<uint8_t> frame(12 + 60, 0);  // vnet header, then a minimum-size frame
    std::memset(frame.data() + 12, 0xff, 6);  // broadcast
    const uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x01};
    std::memcpy(frame.data() + 18, src, 6);
    frame[24] = kTestEtherType >> 8;
    frame[25] = kTestEtherType & 0xff;
    const char payload[] = "vmm-tap-smoke";
    std::memcpy(frame.data() + 26, payload, sizeof(payload));
    iovec iov{frame.data(), frame.size()};
    auto written = tap.write(std::span(&iov, 1));
    check(written.has_value() && *written == frame.size(), "frame written into the tap fd");

    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool found = false;
    while (!found && wait_readable(raw.get(), deadline)) {
        std::vector<uint8_t> buf(2048);
        ssize_t n = ::recv(raw.get(), buf.data(), buf.size(), 0);
        if (n < 14) continue;
        buf.resize(static_cast<size_t>(n));
        found = be16_at(buf, 12) == kTestEtherType && buf.size() >= 60 &&
                std::memcmp(buf.data() + 14, payload, sizeof(payload)) == 0;
    }
    check(found, "the frame (header stripped, intact) reached the host stack");
}

}  // namespace

int main() {
    auto too_long = Tap::open(std::string(20, 'x'));
    check(!too_long && too_long.error().message().find("name longer") != std::string::npos,
          "over-long tap name refused with a clear error");

    auto tap = Tap::open(kTapName);
    if (!tap) {
        if (tap.error().errno_value() == EPERM || tap.error().errno_value() == ENOENT) {
            std::printf("SKIPPED: %s\n", tap.error().message().c_str());
            return 77;
        }
        std::printf("FAIL: %s\n", tap.error().message().c_str());
        return 1;
    }
    check(tap->name() == kTapName, "tap has the requested name");
    auto configured = tap->configure("10.200.0.1", "255.255.255.0");
    if (!configured) std::printf("  %s\n", configured.error().message().c_str());
    check(configured.has_value(), "configure 10.200.0.1/255.255.255.0 and bring the link up");
    auto bad_ip = tap->configure("10.200.0.300", std::nullopt);
    check(!bad_ip && bad_ip.error().message().find("invalid IPv4 address '10.200.0.300'") !=
                         std::string::npos,
          "bad address refused with a clear error");

    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, kTapName, IFNAMSIZ - 1);
    check(::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP) != 0,
          "link is up");
    check(ifreq_ipv4(sock.get(), SIOCGIFADDR) == "10.200.0.1", "address is 10.200.0.1");
    check(ifreq_ipv4(sock.get(), SIOCGIFNETMASK) == "255.255.255.0", "netmask is /24");

    check_host_to_tap(*tap);
    check_tap_to_host(*tap);

    std::printf("%s (%d failures)\n", g_failures == 0 ? "PASSED" : "FAILED", g_failures);
    return g_failures == 0 ? 0 : 1;
}
