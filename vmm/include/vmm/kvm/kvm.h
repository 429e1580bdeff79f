// RAII owners for /dev/kvm, a VM and its memory slots, irqfds and ioeventfds.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "common/event_fd.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "memory/guest_address.h"
#include "vmm/kvm/vcpu_fd.h"

namespace vmm::kvm {

class VmFd;

// The /dev/kvm system fd.
class Kvm {
public:
    [[nodiscard]] static Result<Kvm> open(const char* path = "/dev/kvm");
    int api_version() const { return m_api_version; }
    int check_extension(long cap) const;
    [[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
    [[nodiscard]] Result<VmFd> create_vm() const;
    int fd() const { return m_fd.get(); }

    // True when /dev/kvm is served by kvm_pvm (a paravirtual nested hypervisor
    // without VMX/SVM): the VMM then applies the documented work-arounds.
    static bool host_is_pvm();

private:
    Kvm(UniqueFd fd, int api, int mmap_size) : m_fd(std::move(fd)), m_api_version(api), m_vcpu_mmap_size(mmap_size) {}
    UniqueFd m_fd;
    int m_api_version = 0;
    int m_vcpu_mmap_size = 0;
};

// Deregisters its irqfd on destruction; the EventFd is shared with the device.
class IrqFd {
public:
    IrqFd(IrqFd&& o) noexcept : m_vm(std::exchange(o.m_vm, -1)), m_fd(std::exchange(o.m_fd, -1)), m_gsi(o.m_gsi) {}
    IrqFd& operator=(IrqFd&&) = delete;
    IrqFd(const IrqFd&) = delete;
    ~IrqFd();

private:
    friend class VmFd;
    IrqFd(int vm, int fd, uint32_t gsi) : m_vm(vm), m_fd(fd), m_gsi(gsi) {}
    int m_vm;
    int m_fd;
    uint32_t m_gsi;
};

// Deregisters its ioeventfd on destruction.
class IoEventFd {
public:
    IoEventFd(IoEventFd&& o) noexcept : m_vm(std::exchange(o.m_vm, -1)), m_req(o.m_req) {}
    IoEventFd& operator=(IoEventFd&&) = delete;
    IoEventFd(const IoEventFd&) = delete;
    ~IoEventFd();

private:
    friend class VmFd;
    IoEventFd(int vm, kvm_ioeventfd req) : m_vm(vm), m_req(req) {}
    int m_vm;
    kvm_ioeventfd m_req;
};

class VmFd {
public:
    [[nodiscard]] Result<void> set_tss_address(uint64_t addr) const;
    [[nodiscard]] Result<void> set_identity_map_address(uint64_t addr) const;
    [[nodiscard]] Result<void> create_irqchip() const;
    [[nodiscard]] Result<void> create_pit2() const;
    // Maps host memory at guest_phys. Slots are removed with the VM.
    [[nodiscard]] Result<void> set_user_memory_region(uint32_t slot, memory::GuestAddress guest_phys,
                                                      uint64_t size, uint64_t host_addr) const;
    [[nodiscard]] Result<VcpuFd> create_vcpu(uint32_t id) const;
    [[nodiscard]] Result<IrqFd> register_irqfd(const EventFd& event, uint32_t gsi) const;
    // A level-triggered irqfd: `resample` is signalled when the guest EOIs the line,
    // so the source (vfio-pci INTx) can unmask and re-assert it.
    [[nodiscard]] Result<IrqFd> register_resample_irqfd(const EventFd& trigger, const EventFd& resample,
                                                        uint32_t gsi) const;
    // KVM_SET_GSI_ROUTING: replaces the whole table (the default IOAPIC/PIC routes
    // must be part of `entries`).
    [[nodiscard]] Result<void> set_gsi_routing(std::span<const kvm_irq_routing_entry> entries) const;
    // Removes a memory slot (size 0).
    [[nodiscard]] Result<void> delete_memory_region(uint32_t slot) const;
    // An ioeventfd at an MMIO (or PIO) address, optionally matching a 4-byte value.
    [[nodiscard]] Result<IoEventFd> register_ioeventfd(const EventFd& event, uint64_t addr, uint32_t len,
                                                       std::optional<uint64_t> datamatch, bool pio) const;
    [[nodiscard]] Result<void> set_irq_line(uint32_t irq, bool level) const;
    int fd() const { return m_fd.get(); }

private:
    friend class Kvm;
    VmFd(UniqueFd fd, int mmap_size) : m_fd(std::move(fd)), m_vcpu_mmap_size(mmap_size) {}
    UniqueFd m_fd;
    int m_vcpu_mmap_size;
};

}  // namespace vmm::kvm
