// Reads a libFuzzer input front to back as little-endian integers and byte runs.
// Past the end every read yields zeros (and no bytes), so a harness never has to
// check lengths and a truncated input still runs. The seed generator
// (tests/fuzz/corpus/make_seeds.py) writes inputs in the same order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace vmm::fuzz {

class FuzzInput {
public:
    FuzzInput(const uint8_t* data, size_t size) : m_data(data), m_size(size) {}

    bool empty() const { return m_pos >= m_size; }
    size_t remaining() const { return m_size - m_pos; }

    uint8_t u8() { return read<uint8_t>(); }
    uint16_t u16() { return read<uint16_t>(); }
    uint32_t u32() { return read<uint32_t>(); }
    uint64_t u64() { return read<uint64_t>(); }
    bool flag() { return (u8() & 1) != 0; }

    // Up to n bytes (fewer at the end of the input).
    std::span<const std::byte> bytes(size_t n) {
        n = std::min(n, remaining());
        auto out = std::span(reinterpret_cast<const std::byte*>(m_data + m_pos), n);
        m_pos += n;
        return out;
    }
    std::string_view chars(size_t n) {
        auto b = bytes(n);
        return {reinterpret_cast<const char*>(b.data()), b.size()};
    }
    // Everything that is left.
    std::span<const std::byte> rest() { return bytes(remaining()); }

private:
    template <typename T>
    T read() {
        T value = 0;
        size_t n = std::min(sizeof(T), remaining());
        std::memcpy(&value, m_data + m_pos, n);  // x86_64 is little-endian
        m_pos += n;
        return value;
    }

    const uint8_t* m_data;
    size_t m_size;
    size_t m_pos = 0;
};

}  // namespace vmm::fuzz
