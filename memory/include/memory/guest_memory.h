// Guest RAM: a sorted set of non-overlapping regions. Every access is bounds- and
// overflow-checked; no raw guest pointer leaves this class except as the iovec of
// a VolatileSlice (for readv/writev) and the integer host address that KVM needs
// for a memory slot.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "common/result.h"
#include "memory/guest_address.h"
#include "memory/mmap_region.h"

namespace vmm::memory {

class GuestRegion {
public:
    GuestRegion(GuestAddress start, MmapRegion mapping)
        : m_start(start), m_mapping(std::move(mapping)) {}

    GuestAddress start() const { return m_start; }
    uint64_t size() const { return m_mapping.size(); }
    GuestRange range() const { return {m_start, size()}; }
    Backing backing() const { return m_mapping.backing(); }
    int memfd() const { return m_mapping.memfd(); }
    // For KVM_SET_USER_MEMORY_REGION and VFIO_IOMMU_MAP_DMA only.
    uint64_t host_address_for_kvm() const {
        return reinterpret_cast<uintptr_t>(m_mapping.host_at(0));
    }

private:
    friend class GuestMemory;
    GuestAddress m_start;
    MmapRegion m_mapping;
};

// A checked window of guest memory inside one region. The memory behind it may be
// changed by the guest at any time, so copy out before validating.
class VolatileSlice {
public:
    GuestAddress address() const { return m_addr; }
    uint64_t size() const { return m_len; }
    iovec as_iovec() const { return {m_host, m_len}; }
    // Copy min(out.size(), size()) bytes out of / min(in.size(), size()) bytes into
    // the window from its start: a too-large buffer can never reach past it.
    void copy_to(std::span<std::byte> out) const;
    void copy_from(std::span<const std::byte> in) const;
    // Sub-window [offset, offset+len); an error when it does not fit in this one.
    [[nodiscard]] Result<VolatileSlice> subslice(uint64_t offset, uint64_t len) const;

private:
    friend class GuestMemory;
    VolatileSlice(GuestAddress addr, std::byte* host, uint64_t len)
        : m_addr(addr), m_host(host), m_len(len) {}
    GuestAddress m_addr;
    std::byte* m_host;
    uint64_t m_len;
};

template <typename T>
concept GuestPod = std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T>;

template <typename T>
concept RingWord = std::is_same_v<T, uint8_t> || std::is_same_v<T, uint16_t> ||
                   std::is_same_v<T, uint32_t> || std::is_same_v<T, uint64_t>;

class GuestMemory {
public:
    // Regions must be page-aligned, non-empty and must not overlap.
    [[nodiscard]] static Result<GuestMemory> create(std::span<const GuestRange> layout,
                                                    const MappingOptions& options = {});

    GuestMemory(GuestMemory&&) noexcept = default;
    GuestMemory& operator=(GuestMemory&&) noexcept = default;

    std::span<const GuestRegion> regions() const { return m_regions; }
    uint64_t total_size() const;
    // True when [addr, addr+len) lies entirely in guest RAM (may span adjacent regions).
    bool contains(GuestAddress addr, uint64_t len) const;
    // The guest address one past the highest RAM byte.
    GuestAddress end_address() const;

    [[nodiscard]] Result<void> read(GuestAddress addr, std::span<std::byte> out) const;
    [[nodiscard]] Result<void> write(GuestAddress addr, std::span<const std::byte> in) const;
    [[nodiscard]] Result<void> fill(GuestAddress addr, uint64_t len, std::byte value) const;

    template <GuestPod T>
    [[nodiscard]] Result<T> read_obj(GuestAddress addr) const {
        T value;
        VMM_TRY(read(addr, std::as_writable_bytes(std::span(&value, 1))));
        return value;
    }
    template <GuestPod T>
    [[nodiscard]] Result<void> write_obj(GuestAddress addr, const T& value) const {
        return write(addr, std::as_bytes(std::span(&value, 1)));
    }

    // Atomic access for ring indices and shared allocator words. The address must be
    // naturally aligned and inside one region.
    template <RingWord T>
    [[nodiscard]] Result<T> load(GuestAddress addr, std::memory_order order) const {
        std::byte* host = VMM_TRY(aligned_host(addr, sizeof(T)));
        return std::atomic_ref<T>(*reinterpret_cast<T*>(host)).load(order);
    }
    template <RingWord T>
    [[nodiscard]] Result<void> store(GuestAddress addr, T value, std::memory_order order) const {
        std::byte* host = VMM_TRY(aligned_host(addr, sizeof(T)));
        std::atomic_ref<T>(*reinterpret_cast<T*>(host)).store(value, order);
        return ok();
    }
    // Compare-and-swap on a shared word; returns the value seen (== expected on success).
    template <RingWord T>
    [[nodiscard]] Result<T> compare_exchange(GuestAddress addr, T expected, T desired) const {
        std::byte* host = VMM_TRY(aligned_host(addr, sizeof(T)));
        std::atomic_ref<T>(*reinterpret_cast<T*>(host))
            .compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
        return expected;
    }

    // A window for readv/writev; it must lie within a single region.
    [[nodiscard]] Result<VolatileSlice> slice(GuestAddress addr, uint64_t len) const;

    // Returns [addr, addr+len) to the host. Page-aligned, inside one region.
    [[nodiscard]] Result<void> discard(GuestAddress addr, uint64_t len) const;
    // Backs [addr, addr+len) with host memory now (MADV_POPULATE_WRITE) so that the
    // guest's first touches do not fault; the contents are unchanged. Page-aligned,
    // inside one region.
    [[nodiscard]] Result<void> populate(GuestAddress addr, uint64_t len) const;

private:
    explicit GuestMemory(std::vector<GuestRegion> regions) : m_regions(std::move(regions)) {}
    // Region index containing addr, or -1.
    int find_region(GuestAddress addr) const;
    // Checks that all of [addr, addr+len) (len > 0) is RAM, possibly spanning adjacent
    // regions, and returns the index of the region holding addr. `what` names the
    // access in the error ("read", "write", ...).
    [[nodiscard]] Result<size_t> check_span(GuestAddress addr, uint64_t len,
                                            const char* what) const;
    // Calls fn(host, done, chunk) for each per-region piece of a range already
    // validated by check_span; `done` is the number of bytes before this piece.
    template <typename Fn>
    void for_each_chunk(size_t first, GuestAddress addr, uint64_t len, Fn&& fn) const;
    [[nodiscard]] Result<std::byte*> aligned_host(GuestAddress addr, uint64_t size) const;
    // The region holding all of [addr, addr+len) (page-aligned) and addr's offset in it,
    // for whole-page operations that must stay inside one mapping.
    struct PageWindow {
        const GuestRegion* region;
        uint64_t offset;
    };
    [[nodiscard]] Result<PageWindow> page_window(GuestAddress addr, uint64_t len,
                                                 const char* what) const;

    std::vector<GuestRegion> m_regions;
};

}  // namespace vmm::memory
