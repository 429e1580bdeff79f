// CPUID normalisation after Firecracker (docs/cpu_templates/cpuid-normalization.md,
// src/vmm/src/cpu_config/x86_64/cpuid/normalize.rs) and cloud-hypervisor
// (arch/src/x86_64/mod.rs). KVM_GET_SUPPORTED_CPUID describes the host; the guest
// must instead see its own topology (one package, vcpu_count single-thread cores,
// APIC id = vCPU index) or Linux builds wrong sibling/cache maps and may
// mis-number CPUs. Leaves KVM did not supply are left out; only topology subleaves
// the guest's enumeration walks are added.
#include "vmm/boot/cpuid.h"

#include <algorithm>
#include <bit>

namespace vmm::boot {
namespace {

using Entries = std::vector<kvm_cpuid_entry2>;

kvm_cpuid_entry2* find(Entries& entries, uint32_t function, uint32_t index) {
    for (auto& e : entries) {
        bool indexed = (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0;
        if (e.function == function && (!indexed || e.index == index)) return &e;
    }
    return nullptr;
}

bool has_leaf(const Entries& entries, uint32_t function) {
    return std::any_of(entries.begin(), entries.end(),
                       [&](const kvm_cpuid_entry2& e) { return e.function == function; });
}

// Replaces bits [lo, lo+width) of `reg` with `value` (truncated to the field).
void set_field(uint32_t& reg, unsigned lo, unsigned width, uint32_t value) {
    const uint32_t mask = (width >= 32 ? ~0u : ((1u << width) - 1)) << lo;
    reg = (reg & ~mask) | ((value << lo) & mask);
}

void set_bit(uint32_t& reg, uint32_t bit, bool on) { reg = on ? (reg | bit) : (reg & ~bit); }

void normalize_leaf1(Entries& entries, const CpuidParams& p) {
    auto* leaf = find(entries, 0x1, 0);
    if (!leaf) return;
    // Initial (xAPIC) id: Linux takes the boot CPU's and the MP/ACPI tables' ids from here.
    set_field(leaf->ebx, 24, 8, p.apic_id);
    // CLFLUSH line size in 8-byte units: 8 = 64 bytes, true on every x86_64 KVM host.
    set_field(leaf->ebx, 8, 8, 8);
    // Addressable logical-processor ids in the package, a power of two (255 when 256
    // does not fit the 8-bit field); HTT says the field is valid, i.e. more than one.
    const uint32_t logical = p.vcpu_count > 1 ? std::min(std::bit_ceil(p.vcpu_count), 255u) : 1;
    set_field(leaf->ebx, 16, 8, logical);
    set_bit(leaf->edx, kCpuid1EdxHtt, p.vcpu_count > 1);
    // Tell the guest it is virtualised so it uses paravirt clocks and PV features.
    set_bit(leaf->ecx, kCpuid1EcxHypervisor, true);
    // KVM's in-kernel LAPIC emulates the TSC-deadline timer even where
    // KVM_GET_SUPPORTED_CPUID leaves the bit clear; it is the cheapest guest timer.
    set_bit(leaf->ecx, kCpuid1EcxTscDeadline, true);
    // PDCM advertises IA32_PERF_CAPABILITIES, which belongs to the PMU we hide (leaf 0xA).
    set_bit(leaf->ecx, kCpuid1EcxPdcm, false);
}

// Intel deterministic cache parameters: the host's sharing counts would describe
// host cores/threads. L1/L2 are per core (one thread each here); L3 is shared by all.
void normalize_leaf4(Entries& entries, const CpuidParams& p) {
    for (auto& e : entries) {
        if (e.function != 0x4 || (e.eax & 0x1f) == 0) continue;  // cache type 0 = no more caches
        const uint32_t level = (e.eax >> 5) & 0x7;
        const uint32_t sharing = level >= 3 ? p.vcpu_count - 1 : 0;
        set_field(e.eax, 14, 12, std::min(sharing, 0xfffu));
        set_field(e.eax, 26, 6, std::min(p.vcpu_count - 1, 0x3fu));  // cores per package - 1
    }
}

kvm_cpuid_entry2 topology_subleaf(uint32_t function, uint32_t index, const CpuidParams& p) {
    kvm_cpuid_entry2 e{};
    e.function = function;
    e.index = index;
    e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    e.ecx = index & 0xff;  // ECX[7:0] echoes the subleaf in every subleaf
    e.edx = p.apic_id;     // full x2APIC id of this vCPU
    if (index == 0) {
        // SMT level: one thread per core, so no APIC-id bits for the thread.
        e.eax = 0;
        e.ebx = 1;
        e.ecx |= kTopologyLevelSmt << 8;
    } else if (index == 1) {
        // Core level: all vCPUs are cores of one package; shifting the APIC id right
        // by ceil(log2(vcpu_count)) gives the package id 0.
        e.eax = ceil_log2(p.vcpu_count);
        e.ebx = p.vcpu_count & 0xffff;
        e.ecx |= kTopologyLevelCore << 8;
    }  // index >= 2: invalid level (EAX = EBX = 0, type 0) ends the enumeration
    return e;
}

// Extended topology leaves 0xB and 0x1F: rewrite every subleaf KVM supplied, and
// make sure subleaves 0..2 exist, since Linux walks them until it finds level type 0.
void normalize_topology(Entries& entries, uint32_t function, const CpuidParams& p) {
    if (!has_leaf(entries, function)) return;
    for (uint32_t index = 0; index <= 2; ++index) {
        if (!find(entries, function, index)) entries.push_back(topology_subleaf(function, index, p));
    }
    for (auto& e : entries) {
        if (e.function == function) e = topology_subleaf(function, e.index, p);
    }
}

void normalize_power_and_pmu(Entries& entries) {
    // Turbo Boost is a host power-management property; the guest cannot control it.
    if (auto* leaf6 = find(entries, 0x6, 0)) set_bit(leaf6->eax, kCpuid6EaxTurbo, false);
    // Architectural PMU leaf zeroed: we do not configure a virtual PMU, and a guest
    // that sees counters would program MSRs that then fault or read host-dependent data.
    if (auto* leaf_a = find(entries, 0xa, 0)) leaf_a->eax = leaf_a->ebx = leaf_a->ecx = leaf_a->edx = 0;
}

void normalize_amd(Entries& entries, const CpuidParams& p) {
    // Size identifiers: NC = threads in the package - 1; ApicIdSize = APIC-id bits
    // for them, consistent with leaf 0xB's core-level shift.
    if (auto* leaf = find(entries, 0x80000008, 0)) {
        set_field(leaf->ecx, 0, 8, std::min(p.vcpu_count - 1, 0xffu));
        set_field(leaf->ecx, 12, 4, ceil_log2(p.vcpu_count));
    }
    // Cache topology: L1/L2 per core, L3 shared by all vCPUs (NumSharingCache - 1).
    for (auto& e : entries) {
        if (e.function != 0x8000001d || (e.eax & 0x1f) == 0) continue;
        const uint32_t level = (e.eax >> 5) & 0x7;
        set_field(e.eax, 14, 12, level >= 3 ? std::min(p.vcpu_count - 1, 0xfffu) : 0);
    }
    // Extended APIC id, compute unit (= core, one thread per unit) and a single node.
    if (auto* leaf = find(entries, 0x8000001e, 0)) {
        leaf->eax = p.apic_id;
        leaf->ebx = p.apic_id & 0xff;  // compute unit id; [15:8] threads per unit - 1 = 0
        leaf->ecx = 0;                 // node id 0, one node per processor
    }
}

}  // namespace

bool cpuid_is_amd(const std::vector<kvm_cpuid_entry2>& entries) {
    for (const auto& e : entries) {
        if (e.function != 0) continue;
        // "Auth" "enti" "cAMD" in EBX, EDX, ECX.
        return e.ebx == 0x68747541 && e.edx == 0x69746e65 && e.ecx == 0x444d4163;
    }
    return false;
}

uint32_t ceil_log2(uint32_t n) {
    return n <= 1 ? 0 : static_cast<uint32_t>(std::bit_width(n - 1));
}

void normalize_cpuid(std::vector<kvm_cpuid_entry2>& entries, const CpuidParams& params) {
    CpuidParams p = params;
    p.vcpu_count = std::max(p.vcpu_count, 1u);
    normalize_leaf1(entries, p);
    normalize_power_and_pmu(entries);
    normalize_topology(entries, 0xb, p);
    normalize_topology(entries, 0x1f, p);
    if (cpuid_is_amd(entries)) {
        normalize_amd(entries, p);
    } else {
        normalize_leaf4(entries, p);  // leaf 4 is Intel-only; AMD reserves it
    }
    // Leaf 0x40000000 (KVM signature and feature leaves) stays as KVM supplies it.
}

}  // namespace vmm::boot
