#include <catch2/catch.hpp>

#include <cstring>
#include <map>
#include <vector>

#include "memory/guest_memory.h"
#include "vmm/boot/boot_layout.h"
#include "vmm/boot/mptable.h"

using namespace vmm;
using namespace vmm::boot;

namespace {

memory::GuestMemory make_memory() {
    const memory::GuestRange ranges[] = {{memory::GuestAddress(0), 1ull << 20}};
    auto mem = memory::GuestMemory::create(ranges);
    REQUIRE(mem);
    return std::move(mem).value();
}

std::vector<uint8_t> read_bytes(const memory::GuestMemory& mem, uint64_t addr, uint64_t len) {
    std::vector<uint8_t> out(len);
    REQUIRE(mem.read(memory::GuestAddress(addr), std::as_writable_bytes(std::span(out))));
    return out;
}

uint8_t byte_sum(const std::vector<uint8_t>& bytes) {
    uint8_t sum = 0;
    for (uint8_t b : bytes) sum = static_cast<uint8_t>(sum + b);
    return sum;
}

uint16_t le16(const std::vector<uint8_t>& b, size_t at) {
    return static_cast<uint16_t>(b[at] | (b[at + 1] << 8));
}
uint32_t le32(const std::vector<uint8_t>& b, size_t at) {
    return uint32_t{b[at]} | (uint32_t{b[at + 1]} << 8) | (uint32_t{b[at + 2]} << 16) |
           (uint32_t{b[at + 3]} << 24);
}

void check_mptable(unsigned n) {
    auto mem = make_memory();
    REQUIRE(write_mptable(mem, n));

    // Floating pointer.
    auto mpf = read_bytes(mem, kMptableAddr, 16);
    CHECK(std::memcmp(mpf.data(), "_MP_", 4) == 0);
    CHECK(byte_sum(mpf) == 0);
    CHECK(mpf[8] == 1);  // length in paragraphs
    CHECK(mpf[9] == 4);  // spec revision 1.4
    const uint32_t table_addr = le32(mpf, 4);
    CHECK(table_addr == kMptableAddr + 16);

    // Configuration table header.
    auto header = read_bytes(mem, table_addr, 44);
    CHECK(std::memcmp(header.data(), "PCMP", 4) == 0);
    const uint16_t length = le16(header, 4);
    CHECK(header[6] == 4);
    CHECK(le32(header, 36) == 0xfee00000);
    REQUIRE(table_addr + length <= 0xa0000);
    auto table = read_bytes(mem, table_addr, length);
    CHECK(byte_sum(table) == 0);
    const uint16_t entry_count = le16(header, 34);

    // Walk entries; the length field must end exactly after the last one.
    std::map<uint8_t, unsigned> per_type;
    std::vector<uint8_t> cpu_ids, cpu_flags, irq_src, irq_dst;
    unsigned ioapic_id = 0xffff;
    std::vector<uint8_t> lint_types, lint_dest, lint_pins;
    size_t off = 44;
    for (unsigned i = 0; i < entry_count; ++i) {
        REQUIRE(off < length);
        const uint8_t type = table[off];
        per_type[type]++;
        switch (type) {
        case 0:
            cpu_ids.push_back(table[off + 1]);
            CHECK(table[off + 2] == 0x14);
            cpu_flags.push_back(table[off + 3]);
            off += 20;
            break;
        case 1:
            CHECK(table[off + 1] == 0);
            CHECK(std::memcmp(&table[off + 2], "ISA   ", 6) == 0);
            off += 8;
            break;
        case 2:
            ioapic_id = table[off + 1];
            CHECK(table[off + 2] == 0x11);
            CHECK((table[off + 3] & 1) == 1);
            CHECK(le32(table, off + 4) == 0xfec00000);
            off += 8;
            break;
        case 3:
            CHECK(table[off + 1] == 0);  // INT
            CHECK(le16(table, off + 2) == 0);
            CHECK(table[off + 4] == 0);  // ISA bus
            irq_src.push_back(table[off + 5]);
            CHECK(table[off + 6] == n);  // IOAPIC id
            irq_dst.push_back(table[off + 7]);
            off += 8;
            break;
        case 4:
            lint_types.push_back(table[off + 1]);
            lint_dest.push_back(table[off + 6]);
            lint_pins.push_back(table[off + 7]);
            off += 8;
            break;
        default:
            FAIL("unknown MP entry type " << int(type));
        }
    }
    CHECK(off == length);
    CHECK(per_type[0] == n);
    CHECK(per_type[1] == 1);
    CHECK(per_type[2] == 1);
    CHECK(per_type[3] == 16);
    CHECK(per_type[4] == 2);
    for (unsigned i = 0; i < n; ++i) {
        CHECK(cpu_ids[i] == i);
        CHECK((cpu_flags[i] & 1) == 1);                 // enabled
        CHECK(((cpu_flags[i] & 2) != 0) == (i == 0));  // BSP only on cpu 0
    }
    CHECK(ioapic_id == n);
    for (unsigned i = 0; i < 16; ++i) {
        CHECK(irq_src[i] == i);
        CHECK(irq_dst[i] == i);
    }
    CHECK(lint_types == std::vector<uint8_t>{3, 1});  // ExtINT, NMI
    CHECK(lint_pins == std::vector<uint8_t>{0, 1});
    CHECK(lint_dest == std::vector<uint8_t>{0xff, 0xff});
    CHECK(mptable_size(n) == 16u + length);
}

}  // namespace

TEST_CASE("mptable parses back for 1, 2 and the maximum CPUs", "[boot]") {
    check_mptable(1);
    check_mptable(2);
    check_mptable(40);  // the most that fit in the KiB below 0xa0000
}

TEST_CASE("mptable rejects bad CPU counts", "[boot]") {
    auto mem = make_memory();
    CHECK_FALSE(write_mptable(mem, 0));
    CHECK_FALSE(write_mptable(mem, 255));
    // 64 vCPUs need 1500 bytes; only 1 KiB lies between kMptableAddr and 0xa0000.
    auto too_many = write_mptable(mem, 64);
    REQUIRE_FALSE(too_many);
    CHECK_THAT(too_many.error().message(), Catch::Contains("0xa0000"));
    CHECK_FALSE(write_mptable(mem, 41));
    // Nothing was written by the failed calls.
    std::vector<uint8_t> sig(4);
    REQUIRE(mem.read(memory::GuestAddress(kMptableAddr), std::as_writable_bytes(std::span(sig))));
    CHECK(sig == std::vector<uint8_t>(4, 0));
}

TEST_CASE("mptable fails cleanly without RAM at 0x9fc00", "[boot]") {
    const memory::GuestRange ranges[] = {{memory::GuestAddress(0x100000), 1ull << 20}};
    auto mem = memory::GuestMemory::create(ranges);
    REQUIRE(mem);
    CHECK_FALSE(write_mptable(*mem, 2));
}

TEST_CASE("mptable routes PCI INTx lines on bus 0 with ISA moved to bus 1", "[boot][pci]") {
    auto mem = make_memory();
    const PciIrqLine lines[] = {{1, 1, 16}, {3, 2, 18}};
    REQUIRE(write_mptable(mem, 2, lines));
    auto mpf = read_bytes(mem, kMptableAddr, 16);
    uint32_t table = le32(mpf, 4);
    auto header = read_bytes(mem, table, kMpcTableSize);
    uint16_t length = le16(header, 4);
    auto all = read_bytes(mem, table, length);
    CHECK(byte_sum(all) == 0);
    CHECK(le16(header, 34) == 2 + 2 + 1 + 16 + 2 + 2);  // cpus, buses, ioapic, ISA irqs, lints, PCI lines
    CHECK(mptable_size(2, 2) == 16u + length);
    std::map<uint8_t, std::string> buses;
    std::vector<std::vector<uint8_t>> ints;
    for (size_t at = kMpcTableSize; at < length;) {
        uint8_t type = all[at];
        if (type == 0) { at += kMpcCpuSize; continue; }
        if (type == 1) buses[all[at + 1]] = std::string(reinterpret_cast<const char*>(&all[at + 2]), 6);
        if (type == 3) ints.emplace_back(all.begin() + static_cast<long>(at), all.begin() + static_cast<long>(at + 8));
        at += kMpcSmallEntry;
    }
    CHECK(buses[0] == "PCI   ");
    CHECK(buses[1] == "ISA   ");
    REQUIRE(ints.size() == 18);
    for (size_t i = 0; i < 16; ++i) CHECK(ints[i][4] == 1);  // ISA entries name bus 1
    // PCI: source bus 0, (slot << 2) | (pin - 1), level + active high, to the IOAPIC pin.
    CHECK(ints[16][4] == 0);
    CHECK(ints[16][5] == (1 << 2 | 0));
    CHECK(ints[16][7] == 16);
    CHECK(le16(ints[16], 2) == 0x0d);
    CHECK(ints[17][5] == (3 << 2 | 1));
    CHECK(ints[17][7] == 18);
}

TEST_CASE("mptable refuses bad PCI lines and tables that no longer fit", "[boot][pci]") {
    auto mem = make_memory();
    const PciIrqLine slot0[] = {{0, 1, 16}};
    CHECK_FALSE(write_mptable(mem, 1, slot0));
    const PciIrqLine pin5[] = {{1, 5, 16}};
    CHECK_FALSE(write_mptable(mem, 1, pin5));
    const PciIrqLine gsi24[] = {{1, 1, 24}};
    CHECK_FALSE(write_mptable(mem, 1, gsi24));
    const PciIrqLine one[] = {{1, 1, 16}};
    auto full = write_mptable(mem, 40, one);
    REQUIRE_FALSE(full);
    CHECK_THAT(full.error().message(), Catch::Contains("PCI interrupt lines"));
}
