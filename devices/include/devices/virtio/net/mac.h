// Ethernet MAC addresses for virtio-net: parsing the user's "aa:bb:cc:dd:ee:ff" and
// generating a random locally administered one when none is given.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "common/result.h"

namespace vmm::devices::virtio::net {

using MacAddress = std::array<uint8_t, 6>;

// Six colon-separated two-digit hex bytes. Multicast addresses (low bit of the
// first byte set) are refused: a NIC's own address must be unicast.
[[nodiscard]] Result<MacAddress> parse_mac(const std::string& text);
// Unicast and locally administered (first byte: bit 0 clear, bit 1 set).
MacAddress random_mac();
// "aa:bb:cc:dd:ee:ff" (lower case).
std::string format_mac(const MacAddress& mac);

}  // namespace vmm::devices::virtio::net
