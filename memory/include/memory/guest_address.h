// A guest-physical address as a strong type: never a bare uint64_t.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>

namespace vmm::memory {

struct GuestAddress {
    uint64_t raw = 0;

    constexpr GuestAddress() = default;
    constexpr explicit GuestAddress(uint64_t value) : raw(value) {}

    // nullopt when the sum wraps past 2^64.
    [[nodiscard]] constexpr std::optional<GuestAddress> checked_add(uint64_t offset) const {
        if (offset > UINT64_MAX - raw) return std::nullopt;
        return GuestAddress(raw + offset);
    }
    // Caller has proven no overflow (e.g. inside a validated region).
    [[nodiscard]] constexpr GuestAddress unchecked_add(uint64_t offset) const {
        return GuestAddress(raw + offset);
    }
    constexpr auto operator<=>(const GuestAddress&) const = default;
};

// [start, start + size) with overflow-safe helpers.
struct GuestRange {
    GuestAddress start;
    uint64_t size = 0;

    // One past the last byte; nullopt if the range wraps.
    [[nodiscard]] constexpr std::optional<uint64_t> end() const {
        if (size > UINT64_MAX - start.raw) return std::nullopt;
        return start.raw + size;
    }
    [[nodiscard]] constexpr bool contains(GuestAddress addr, uint64_t len) const {
        auto e = end();
        if (!e || addr < start || len > UINT64_MAX - addr.raw) return false;
        return addr.raw + len <= *e;
    }
    constexpr bool operator==(const GuestRange&) const = default;
};

}  // namespace vmm::memory
