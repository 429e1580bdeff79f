#include "devices/virtio/net/mac.h"

#include <random>

namespace vmm::devices::virtio::net {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

Result<MacAddress> parse_mac(const std::string& text) {
    auto bad = [&](std::string_view why) {
        return Error::msg("invalid MAC address '{}': {}", text, why);
    };
    // "aa:bb:cc:dd:ee:ff" is exactly 17 characters.
    if (text.size() != 17) return bad("expected six hex bytes like 52:54:00:12:34:56");
    MacAddress mac{};
    for (size_t i = 0; i < mac.size(); ++i) {
        size_t at = i * 3;
        int hi = hex_value(text[at]);
        int lo = hex_value(text[at + 1]);
        if (hi < 0 || lo < 0) return bad("expected six hex bytes like 52:54:00:12:34:56");
        if (i + 1 < mac.size() && text[at + 2] != ':') return bad("bytes must be separated by ':'");
        mac[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    if (mac[0] & 1) return bad("multicast address (low bit of the first byte is set)");
    return mac;
}

MacAddress random_mac() {
    std::random_device rd;
    MacAddress mac{};
    for (auto& b : mac) b = static_cast<uint8_t>(rd());
    mac[0] = static_cast<uint8_t>((mac[0] & 0xfe) | 0x02);
    return mac;
}

std::string format_mac(const MacAddress& mac) {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2],
                       mac[3], mac[4], mac[5]);
}

}  // namespace vmm::devices::virtio::net
