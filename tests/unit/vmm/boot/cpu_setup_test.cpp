#include <catch2/catch.hpp>

#include <cstring>
#include <optional>

#include "memory/guest_memory.h"
#include "vmm/boot/boot_layout.h"
#include "vmm/boot/cpu_setup.h"

using namespace vmm;
using namespace vmm::boot;

namespace {

memory::GuestMemory make_memory() {
    const memory::GuestRange ranges[] = {{memory::GuestAddress(0), 1ull << 20}};
    auto mem = memory::GuestMemory::create(ranges);
    REQUIRE(mem);
    return std::move(mem).value();
}

uint64_t read_u64(const memory::GuestMemory& mem, uint64_t addr) {
    auto v = mem.read_obj<uint64_t>(memory::GuestAddress(addr));
    REQUIRE(v);
    return *v;
}

constexpr uint64_t kAddrMask = 0x000ffffffffff000ull;

// Walks PML4 -> PDPT -> PD (2 MiB page); nullopt when a level is not present.
// Every present level must be writable and supervisor-only.
std::optional<uint64_t> translate(const memory::GuestMemory& mem, uint64_t va) {
    uint64_t table = kPml4Addr;
    for (unsigned shift : {39u, 30u, 21u}) {
        const uint64_t e = read_u64(mem, table + ((va >> shift) & 0x1ff) * 8);
        if (!(e & kPtePresent)) return std::nullopt;
        CHECK((e & kPteWritable) != 0);
        CHECK((e & kPteUser) == 0);
        if (shift == 21) {
            REQUIRE((e & kPtePageSize) != 0);
            return (e & kAddrMask & ~0x1fffffull) | (va & 0x1fffff);
        }
        CHECK((e & kPtePageSize) == 0);
        table = e & kAddrMask;
    }
    return std::nullopt;
}

// Independent decoder of a GDT descriptor (Intel SDM vol. 3, 3.4.5).
void check_segment_matches(uint64_t desc, const kvm_segment& seg, uint16_t selector) {
    const uint64_t base = ((desc >> 16) & 0xffffff) | ((desc >> 56) << 24);
    const bool g = (desc >> 55) & 1;
    uint64_t limit = (desc & 0xffff) | (((desc >> 48) & 0xf) << 16);
    if (g) limit = (limit << 12) | 0xfff;
    CHECK(seg.selector == selector);
    CHECK(seg.base == base);
    CHECK(seg.limit == limit);
    CHECK(seg.type == ((desc >> 40) & 0xf));
    CHECK(seg.s == ((desc >> 44) & 1));
    CHECK(seg.dpl == ((desc >> 45) & 3));
    CHECK(seg.present == ((desc >> 47) & 1));
    CHECK(seg.avl == ((desc >> 52) & 1));
    CHECK(seg.l == ((desc >> 53) & 1));
    CHECK(seg.db == ((desc >> 54) & 1));
    CHECK(seg.g == g);
    CHECK(seg.unusable == 0);
}

uint32_t lapic_reg(const kvm_lapic_state& lapic, size_t off) {
    uint32_t v;
    std::memcpy(&v, lapic.regs + off, 4);
    return v;
}

}  // namespace

TEST_CASE("identity page tables translate addresses to themselves", "[boot]") {
    auto mem = make_memory();
    REQUIRE(write_page_tables_and_gdt(mem));
    for (uint64_t va : {0x0ull, 0x1234ull, 0x1000000ull, 0x40201000ull, 0xbfffffffull,
                        0xfee00000ull, 0xffe00000ull, 0xffffffffull}) {
        auto pa = translate(mem, va);
        REQUIRE(pa);
        CHECK(*pa == va);
    }
    CHECK_FALSE(translate(mem, 0x100000000ull));  // only the first 4 GiB
    CHECK_FALSE(translate(mem, 1ull << 39));
}

TEST_CASE("page table write fails without low RAM", "[boot]") {
    const memory::GuestRange ranges[] = {{memory::GuestAddress(0x100000), 1ull << 20}};
    auto mem = memory::GuestMemory::create(ranges);
    REQUIRE(mem);
    CHECK_FALSE(write_page_tables_and_gdt(*mem));
}

TEST_CASE("GDT in memory decodes to the long-mode segment registers", "[boot]") {
    auto mem = make_memory();
    REQUIRE(write_page_tables_and_gdt(mem));
    uint64_t gdt[4];
    for (int i = 0; i < 4; ++i) gdt[i] = read_u64(mem, kGdtAddr + 8 * i);
    CHECK(gdt[0] == 0);
    CHECK(read_u64(mem, kIdtAddr) == 0);

    kvm_sregs current{};
    current.apic_base = 0xfee00900;
    current.interrupt_bitmap[0] = 0x5;
    current.cr0 = 0x60000010;  // KVM's reset value with CD|NW
    current.efer = kEferSce;
    const kvm_sregs s = long_mode_sregs(current);

    check_segment_matches(gdt[1], s.cs, kCodeSelector);
    for (const kvm_segment* seg : {&s.ds, &s.es, &s.fs, &s.gs, &s.ss}) {
        check_segment_matches(gdt[2], *seg, kDataSelector);
    }
    check_segment_matches(gdt[3], s.tr, kTssSelector);

    CHECK(s.cs.l == 1);
    CHECK(s.cs.db == 0);
    CHECK(s.cs.type == 0xb);
    CHECK(s.ds.type == 0x3);
    CHECK(s.ds.db == 1);
    CHECK(s.tr.type == 11);
    CHECK(s.tr.s == 0);

    CHECK(s.gdt.base == kGdtAddr);
    CHECK(s.gdt.limit == 31);
    CHECK(s.idt.base == kIdtAddr);
    CHECK(s.idt.limit == 7);
    CHECK((s.cr0 & (kCr0Pe | kCr0Pg | kCr0Et)) == (kCr0Pe | kCr0Pg | kCr0Et));
    CHECK((s.cr0 & (3ull << 29)) == 0);  // caches enabled
    CHECK(s.cr3 == kPml4Addr);
    CHECK(s.cr4 == kCr4Pae);
    CHECK(s.efer == (kEferLme | kEferLma));
    CHECK((s.efer & kEferSce) == 0);
    CHECK(s.apic_base == 0xfee00900);
    CHECK(s.interrupt_bitmap[0] == 0x5);
}

TEST_CASE("boot registers and FPU", "[boot]") {
    const kvm_regs r = boot_registers(memory::GuestAddress(0x1000200));
    CHECK(r.rip == 0x1000200);
    CHECK(r.rsp == kBootStackTop);
    CHECK(r.rbp == kBootStackTop);
    CHECK(r.rsi == kZeroPageAddr);
    CHECK(r.rflags == 0x2);
    CHECK(r.rax == 0);
    CHECK(r.rdi == 0);

    const kvm_fpu f = boot_fpu();
    CHECK(f.fcw == 0x37f);
    CHECK(f.mxcsr == 0x1f80);
    CHECK(f.fsw == 0);
}

TEST_CASE("boot MSR list", "[boot]") {
    const auto msrs = boot_msrs();
    auto value_of = [&](uint32_t index) -> std::optional<uint64_t> {
        std::optional<uint64_t> found;
        for (const auto& m : msrs) {
            if (m.index != index) continue;
            CHECK_FALSE(found.has_value());  // no duplicates
            found = m.data;
        }
        return found;
    };
    for (uint32_t zero : {0x174u, 0x175u, 0x176u, 0xc0000081u, 0xc0000082u, 0xc0000083u,
                          0xc0000084u, 0xc0000102u, 0x10u}) {
        INFO("MSR " << std::hex << zero);
        CHECK(value_of(zero) == std::optional<uint64_t>(0));
    }
    CHECK(value_of(0x1a0) == std::optional<uint64_t>(1));
    CHECK(value_of(0x2ff) == std::optional<uint64_t>(0x806));
    CHECK(msrs.size() == 11);
    for (const auto& m : msrs) CHECK(m.reserved == 0);
}

TEST_CASE("LAPIC LINT0 = ExtINT, LINT1 = NMI, other bits kept", "[boot]") {
    kvm_lapic_state lapic{};
    const uint32_t lint0 = 0x00010000 | (0x1 << 8) | 0x30;  // masked, lowest-priority, vector
    const uint32_t lint1 = 0x00018000 | (0x2 << 8);         // masked, level, SMI
    std::memcpy(lapic.regs + 0x350, &lint0, 4);
    std::memcpy(lapic.regs + 0x360, &lint1, 4);
    std::memset(lapic.regs + 0x20, 0xab, 4);  // APIC id register untouched

    configure_lapic_lint(lapic);
    CHECK(((lapic_reg(lapic, 0x350) >> 8) & 7) == 7);
    CHECK(((lapic_reg(lapic, 0x360) >> 8) & 7) == 4);
    CHECK((lapic_reg(lapic, 0x350) & ~0x700u) == (lint0 & ~0x700u));
    CHECK((lapic_reg(lapic, 0x360) & ~0x700u) == (lint1 & ~0x700u));
    CHECK(lapic_reg(lapic, 0x20) == 0xabababab);
}
