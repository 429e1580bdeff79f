#include <catch2/catch.hpp>

#include <vector>

#include "vmm/boot/cpuid.h"

using namespace vmm::boot;

namespace {

using Entries = std::vector<kvm_cpuid_entry2>;
constexpr uint32_t kIndexed = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;

kvm_cpuid_entry2 leaf(uint32_t fn, uint32_t idx, uint32_t flags, uint32_t a, uint32_t b,
                      uint32_t c, uint32_t d) {
    kvm_cpuid_entry2 e{};
    e.function = fn;
    e.index = idx;
    e.flags = flags;
    e.eax = a;
    e.ebx = b;
    e.ecx = c;
    e.edx = d;
    return e;
}

const kvm_cpuid_entry2& get(const Entries& entries, uint32_t fn, uint32_t idx = 0) {
    for (const auto& e : entries) {
        if (e.function == fn && e.index == idx) return e;
    }
    FAIL("missing leaf " << std::hex << fn << "." << idx);
    return entries.front();
}

size_t count(const Entries& entries, uint32_t fn) {
    size_t n = 0;
    for (const auto& e : entries) n += e.function == fn;
    return n;
}

// Host-like values: 16 logical CPUs, SMT on, host APIC id 0x0c, PDCM set.
constexpr uint32_t kHostLeaf1Ecx = 0x7ffafbbf & ~(1u << 31) & ~(1u << 24);  // includes PDCM
constexpr uint32_t kHostLeaf1Ebx = 0x0c100800 | 0x10000;

// Leaf-4 style cache descriptor: type (1 data, 2 instr, 3 unified), level, host sharing.
uint32_t cache_eax(uint32_t type, uint32_t level) {
    return (7u << 26) | (15u << 14) | (1u << 8) | (level << 5) | type;
}

Entries common_leaves() {
    return {
        leaf(0x1, 0, 0, 0x000906ea, kHostLeaf1Ebx, kHostLeaf1Ecx, 0xbfebfbff),
        leaf(0x6, 0, 0, 0x000027f7, 0x2, 0x9, 0),
        leaf(0xa, 0, 0, 0x07300404, 0, 0, 0x603),
        leaf(0xb, 0, kIndexed, 1, 2, 0x100, 0x0c),
        leaf(0xb, 1, kIndexed, 4, 16, 0x201, 0x0c),
        leaf(0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
    };
}

Entries intel_list() {
    Entries e = common_leaves();
    e.push_back(leaf(0x0, 0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69));  // GenuineIntel
    e.push_back(leaf(0x4, 0, kIndexed, cache_eax(1, 1), 0x1c0003f, 0x3f, 0));
    e.push_back(leaf(0x4, 1, kIndexed, cache_eax(2, 1), 0x1c0003f, 0x3f, 0));
    e.push_back(leaf(0x4, 2, kIndexed, cache_eax(3, 2), 0x1c0003f, 0x3ff, 0));
    e.push_back(leaf(0x4, 3, kIndexed, cache_eax(3, 3), 0x3c0003f, 0x3fff, 6));
    e.push_back(leaf(0x4, 4, kIndexed, 0, 0, 0, 0));
    e.push_back(leaf(0x1f, 0, kIndexed, 1, 2, 0x100, 0x0c));
    e.push_back(leaf(0x1f, 1, kIndexed, 4, 16, 0x201, 0x0c));
    e.push_back(leaf(0x1f, 2, kIndexed, 6, 16, 0x502, 0x0c));  // die level
    e.push_back(leaf(0x80000008, 0, 0, 0x3027, 0, 0, 0));
    return e;
}

Entries amd_list() {
    Entries e = common_leaves();
    e.push_back(leaf(0x0, 0, 0, 0x10, 0x68747541, 0x444d4163, 0x69746e65));  // AuthenticAMD
    e.push_back(leaf(0x4, 0, kIndexed, 0x1234, 0, 0, 0));  // reserved on AMD: untouched
    e.push_back(leaf(0x80000008, 0, 0, 0x3030, 0, 0x400f, 0));
    e.push_back(leaf(0x8000001d, 0, kIndexed, cache_eax(1, 1), 0x1c0003f, 0x3f, 0));
    e.push_back(leaf(0x8000001d, 1, kIndexed, cache_eax(3, 2), 0x1c0003f, 0x3ff, 0));
    e.push_back(leaf(0x8000001d, 2, kIndexed, cache_eax(3, 3), 0x3c0003f, 0x3fff, 0));
    e.push_back(leaf(0x8000001d, 3, kIndexed, 0, 0, 0, 0));
    e.push_back(leaf(0x8000001e, 0, 0, 0x1c, 0x10e, 0x300, 0));
    return e;
}

void check_common(const Entries& e) {
    const auto& l1 = get(e, 0x1);
    CHECK((l1.ebx >> 24) == 3);             // initial APIC id
    CHECK(((l1.ebx >> 8) & 0xff) == 8);     // CLFLUSH 64 bytes
    CHECK(((l1.ebx >> 16) & 0xff) == 4);    // 4 logical processors
    CHECK((l1.ebx & 0xff) == (kHostLeaf1Ebx & 0xff));  // brand index kept
    CHECK((l1.edx & kCpuid1EdxHtt) != 0);
    CHECK((l1.ecx & kCpuid1EcxHypervisor) != 0);
    CHECK((l1.ecx & kCpuid1EcxTscDeadline) != 0);
    CHECK((l1.ecx & kCpuid1EcxPdcm) == 0);
    const uint32_t touched = kCpuid1EcxHypervisor | kCpuid1EcxTscDeadline | kCpuid1EcxPdcm;
    CHECK((l1.ecx & ~touched) == (kHostLeaf1Ecx & ~touched));
    CHECK(l1.eax == 0x000906ea);

    CHECK(get(e, 0x6).eax == (0x27f7u & ~kCpuid6EaxTurbo));
    const auto& pmu = get(e, 0xa);
    CHECK((pmu.eax | pmu.ebx | pmu.ecx | pmu.edx) == 0);

    const auto& kvm = get(e, 0x40000000);
    CHECK(kvm.eax == 0x40000001);
    CHECK(kvm.ebx == 0x4b4d564b);
    CHECK(kvm.edx == 0x4d);

    // Extended topology: SMT level, core level, then invalid.
    const auto& smt = get(e, 0xb, 0);
    CHECK(smt.eax == 0);
    CHECK(smt.ebx == 1);
    CHECK(smt.ecx == ((kTopologyLevelSmt << 8) | 0));
    CHECK(smt.edx == 3);
    const auto& core = get(e, 0xb, 1);
    CHECK((core.eax & 0x1f) == 2);  // ceil(log2(4))
    CHECK((core.ebx & 0xffff) == 4);
    CHECK(core.ecx == ((kTopologyLevelCore << 8) | 1));
    CHECK(core.edx == 3);
    const auto& end = get(e, 0xb, 2);  // added: KVM's list had only 0 and 1
    CHECK((end.flags & kIndexed) != 0);
    CHECK(end.eax == 0);
    CHECK(end.ebx == 0);
    CHECK(end.ecx == 2);
    CHECK(end.edx == 3);
}

}  // namespace

TEST_CASE("CPUID normalisation for an Intel host, vCPU 3 of 4", "[boot]") {
    Entries e = intel_list();
    const size_t before = e.size();
    normalize_cpuid(e, {3, 4});
    CHECK_FALSE(cpuid_is_amd(e));
    check_common(e);
    CHECK(e.size() == before + 1);  // only 0xB subleaf 2 was added

    // Leaf 4: L1/L2 private to a core, L3 shared by all 4; 4 cores per package.
    for (uint32_t i = 0; i < 4; ++i) {
        INFO("leaf 4 subleaf " << i);
        const uint32_t eax = get(e, 0x4, i).eax;
        CHECK((eax >> 26) == 3);
        CHECK(((eax >> 14) & 0xfff) == (i == 3 ? 3u : 0u));
        CHECK((eax & 0x3fff) == (cache_eax(i == 0 ? 1 : i == 1 ? 2 : 3, i < 2 ? 1 : i) & 0x3fff));
    }
    CHECK(get(e, 0x4, 4).eax == 0);  // terminator untouched

    for (uint32_t i = 0; i < 3; ++i) CHECK(get(e, 0x1f, i).edx == 3);
    CHECK(get(e, 0x1f, 0).ecx == 0x100);
    CHECK(get(e, 0x1f, 1).ecx == 0x201);
    CHECK(get(e, 0x1f, 1).eax == 2);
    CHECK(get(e, 0x1f, 2).ecx == 2);  // host die level became invalid
    CHECK(get(e, 0x1f, 2).eax == 0);
    CHECK(get(e, 0x80000008).ecx == 0);  // AMD-only change not applied
}

TEST_CASE("CPUID normalisation for an AMD host, vCPU 3 of 4", "[boot]") {
    Entries e = amd_list();
    normalize_cpuid(e, {3, 4});
    CHECK(cpuid_is_amd(e));
    check_common(e);
    CHECK(count(e, 0x1f) == 0);  // not invented
    CHECK(get(e, 0x4).eax == 0x1234);

    const auto& sizes = get(e, 0x80000008);
    CHECK((sizes.ecx & 0xff) == 3);
    CHECK(((sizes.ecx >> 12) & 0xf) == 2);
    CHECK(sizes.eax == 0x3030);
    CHECK(get(e, 0x8000001e).eax == 3);
    CHECK((get(e, 0x8000001e).ebx & 0xff) == 3);
    CHECK(((get(e, 0x8000001d, 0).eax >> 14) & 0xfff) == 0);
    CHECK(((get(e, 0x8000001d, 1).eax >> 14) & 0xfff) == 0);
    CHECK(((get(e, 0x8000001d, 2).eax >> 14) & 0xfff) == 3);
}

TEST_CASE("CPUID leaf 1 for one vCPU and non-power-of-two counts", "[boot]") {
    Entries one = intel_list();
    normalize_cpuid(one, {0, 1});
    CHECK((get(one, 0x1).edx & kCpuid1EdxHtt) == 0);
    CHECK(((get(one, 0x1).ebx >> 16) & 0xff) == 1);
    CHECK((get(one, 0x1).ebx >> 24) == 0);
    CHECK(get(one, 0xb, 1).eax == 0);
    CHECK(get(one, 0xb, 1).ebx == 1);
    CHECK((get(one, 0x4, 3).eax >> 14) == 0);  // nothing shared, one core

    Entries three = intel_list();
    normalize_cpuid(three, {2, 3});
    CHECK(((get(three, 0x1).ebx >> 16) & 0xff) == 4);
    CHECK(get(three, 0xb, 1).eax == 2);
    CHECK(get(three, 0xb, 1).ebx == 3);

    Entries many = intel_list();
    normalize_cpuid(many, {200, 254});
    CHECK(((get(many, 0x1).ebx >> 16) & 0xff) == 255);  // 256 does not fit 8 bits
    CHECK((get(many, 0x1).ebx >> 24) == 200);
    CHECK((get(many, 0x4, 0).eax >> 26) == 63);  // 6-bit field saturates
    CHECK(get(many, 0xb, 1).eax == 8);
}

TEST_CASE("CPUID normalisation leaves absent leaves absent", "[boot]") {
    Entries e = {leaf(0x0, 0, 0, 0x1, 0x756e6547, 0x6c65746e, 0x49656e69),
                 leaf(0x1, 0, 0, 0x906ea, 0, 0, 0)};
    normalize_cpuid(e, {1, 2});
    CHECK(e.size() == 2);
    CHECK((get(e, 0x1).ebx >> 24) == 1);
    CHECK(ceil_log2(1) == 0);
    CHECK(ceil_log2(2) == 1);
    CHECK(ceil_log2(5) == 3);
    CHECK(ceil_log2(64) == 6);
}
