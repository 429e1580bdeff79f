// Boot page tables and GDT, laid out like Firecracker's regs.rs but mapping the
// whole first 4 GiB: the 64-bit boot protocol needs an identity map covering the
// kernel, zero page, command line and initrd, and the initrd may sit anywhere below
// 4 GiB (kDefaultInitrdAddrMax). The kernel replaces these tables early on.
#include <vector>

#include "vmm/boot/boot_layout.h"
#include "vmm/boot/cpu_setup.h"

namespace vmm::boot {
namespace {

constexpr uint64_t kPageSize = 0x1000;
constexpr uint64_t kEntriesPerTable = 512;
constexpr uint64_t kHugePage = 2ull << 20;
constexpr uint64_t kPdptSpan = 1ull << 30;  // bytes one PDPT entry (one PD) maps
constexpr uint64_t kNumPds = kIdentityMapSize / kPdptSpan;
// Supervisor-only (no U bit): nothing runs in user mode before Linux has its own tables.
constexpr uint64_t kTableFlags = kPtePresent | kPteWritable;

static_assert(kNumPds <= kEntriesPerTable);
static_assert(kPdAddr + kNumPds * kPageSize <= kCmdlineAddr, "PDs overlap the command line");
static_assert(kGdtAddr + kGdtEntries * 8 <= kIdtAddr, "GDT overlaps the IDT");

Result<void> write_table(const memory::GuestMemory& mem, uint64_t addr,
                         const std::vector<uint64_t>& entries) {
    auto bytes = std::as_bytes(std::span(entries));
    return mem.write(memory::GuestAddress(addr), bytes);
}

Result<void> write_page_tables(const memory::GuestMemory& mem) {
    std::vector<uint64_t> pml4(kEntriesPerTable, 0);
    pml4[0] = kPdptAddr | kTableFlags;
    VMM_TRY(write_table(mem, kPml4Addr, pml4));

    std::vector<uint64_t> pdpt(kEntriesPerTable, 0);
    for (uint64_t i = 0; i < kNumPds; ++i) pdpt[i] = (kPdAddr + i * kPageSize) | kTableFlags;
    VMM_TRY(write_table(mem, kPdptAddr, pdpt));

    // The PDs are contiguous, so entry k of the combined array maps k * 2 MiB.
    std::vector<uint64_t> pds(kNumPds * kEntriesPerTable);
    for (uint64_t k = 0; k < pds.size(); ++k) pds[k] = (k * kHugePage) | kTableFlags | kPtePageSize;
    return write_table(mem, kPdAddr, pds);
}

}  // namespace

std::array<uint64_t, kGdtEntries> boot_gdt() {
    // Limits are 0xfffff pages (G=1): ignored in 64-bit mode but kept flat so the
    // cached descriptors make sense to anyone inspecting them.
    return {gdt_entry(0, 0, 0), gdt_entry(kGdtCode64Flags, 0, 0xfffff),
            gdt_entry(kGdtDataFlags, 0, 0xfffff), gdt_entry(kGdtTssFlags, 0, 0xfffff)};
}

Result<void> write_page_tables_and_gdt(const memory::GuestMemory& mem) {
    VMM_TRY_CTX(write_page_tables(mem), "writing boot page tables");
    const auto gdt = boot_gdt();
    VMM_TRY_CTX(mem.write(memory::GuestAddress(kGdtAddr), std::as_bytes(std::span(gdt))),
                "writing boot GDT");
    // An empty IDT: an exception before Linux installs its own becomes a triple
    // fault (a clean VM exit) rather than a jump through garbage.
    VMM_TRY_CTX(mem.write_obj(memory::GuestAddress(kIdtAddr), uint64_t{0}), "writing boot IDT");
    return ok();
}

}  // namespace vmm::boot
