#include <algorithm>
#include <cstring>

#include "memory/guest_memory.h"

namespace vmm::memory {

void VolatileSlice::copy_to(std::span<std::byte> out) const {
    uint64_t n = std::min<uint64_t>(out.size(), m_len);
    if (n != 0) std::memcpy(out.data(), m_host, n);
}

void VolatileSlice::copy_from(std::span<const std::byte> in) const {
    uint64_t n = std::min<uint64_t>(in.size(), m_len);
    if (n != 0) std::memcpy(m_host, in.data(), n);
}

Result<VolatileSlice> VolatileSlice::subslice(uint64_t offset, uint64_t len) const {
    if (offset > m_len || len > m_len - offset) {
        return Error::msg("sub-slice [{:#x}, +{:#x}) exceeds the {:#x}-byte slice at {:#x}",
                          offset, len, m_len, m_addr.raw);
    }
    return VolatileSlice(m_addr.unchecked_add(offset), m_host + offset, len);
}

}  // namespace vmm::memory
