// What a device that lets hardware DMA into guest RAM (VFIO, issue 7) offers the
// balloons: keep the IOMMU's view of guest RAM in step with what is backed. The
// IOVA of guest RAM is its guest-physical address. The HyperAlloc balloon unmaps a
// range before it discards it and maps a frame before it acknowledges an install.
#pragma once

#include <cstdint>

#include "common/result.h"
#include "memory/guest_address.h"

namespace vmm::memory {

class DmaMapper {
public:
    virtual ~DmaMapper() = default;
    // [addr, addr+len) is guest RAM inside one region, page-aligned.
    [[nodiscard]] virtual Result<void> map(GuestAddress addr, uint64_t len) = 0;
    [[nodiscard]] virtual Result<void> unmap(GuestAddress addr, uint64_t len) = 0;
};

}  // namespace vmm::memory
