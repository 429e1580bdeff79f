// LAPIC local interrupt pins in virtual-wire mode (FC arch/x86_64/interrupts.rs,
// kvmtool x86/kvm-cpu.c): LINT0 carries the 8259's ExtINT, LINT1 the NMI. This
// matches the MP table's local interrupt entries. Only the delivery mode field is
// changed; the mask and other bits keep KVM's reset values, as FC does.
#include <cstring>

#include "vmm/boot/cpu_setup.h"

namespace vmm::boot {
namespace {

static_assert(kApicLvtLint1 + sizeof(uint32_t) <= sizeof(kvm_lapic_state::regs));

// The register page is a char array in LAPIC layout: little-endian 32-bit registers.
uint32_t get_reg(const kvm_lapic_state& lapic, size_t offset) {
    uint32_t value;
    std::memcpy(&value, lapic.regs + offset, sizeof(value));
    return value;
}

void set_reg(kvm_lapic_state& lapic, size_t offset, uint32_t value) {
    std::memcpy(lapic.regs + offset, &value, sizeof(value));
}

void set_delivery_mode(kvm_lapic_state& lapic, size_t offset, uint32_t mode) {
    uint32_t reg = get_reg(lapic, offset);
    set_reg(lapic, offset, (reg & ~kApicDeliveryModeMask) | (mode << 8));
}

}  // namespace

void configure_lapic_lint(kvm_lapic_state& lapic) {
    set_delivery_mode(lapic, kApicLvtLint0, kApicModeExtInt);
    set_delivery_mode(lapic, kApicLvtLint1, kApicModeNmi);
}

}  // namespace vmm::boot
