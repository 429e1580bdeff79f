// From 2 MiB children to guest-physical ranges: the host discards, unmaps and maps
// memory one range of adjacent children at a time (one system call per run instead
// of one per frame), but never across a RAM region boundary (each region is its own
// mapping and DMA mapping).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "memory/guest_memory.h"

namespace vmm::balloon::hyperalloc {

// Guest address of child `child` of an instance starting at base_pfn.
memory::GuestAddress child_address(uint64_t base_pfn, uint64_t child);

// Whether all 2 MiB of the child are RAM inside one region. Only such children are
// ever reclaimed: a guest may call frames in a hole free.
bool child_is_ram(const memory::GuestMemory& mem, uint64_t base_pfn, uint64_t child);

// Sorted, merged ranges of the given children (each must satisfy child_is_ram;
// others are skipped). Duplicates are ignored.
std::vector<memory::GuestRange> merge_children(const memory::GuestMemory& mem, uint64_t base_pfn,
                                               std::vector<uint64_t> children);

}  // namespace vmm::balloon::hyperalloc
