// An InterruptLine backed by an irqfd on a GSI of the in-kernel PIC/IOAPIC.
#pragma once

#include <optional>

#include "common/event_fd.h"
#include "common/log.h"
#include "devices/bus_device.h"
#include "vmm/kvm/kvm.h"

namespace vmm {

class IrqFdLine final : public devices::InterruptLine {
public:
    [[nodiscard]] static Result<std::shared_ptr<IrqFdLine>> create(const kvm::VmFd& vm, uint32_t gsi) {
        EventFd event = VMM_TRY(EventFd::create());
        kvm::IrqFd registration = VMM_TRY(vm.register_irqfd(event, gsi));
        return std::shared_ptr<IrqFdLine>(new IrqFdLine(std::move(event), std::move(registration), gsi));
    }
    void trigger() override {
        if (auto r = m_event.signal(); !r) log::error("IRQ {}: {}", m_gsi, r.error().message());
    }

private:
    IrqFdLine(EventFd event, kvm::IrqFd registration, uint32_t gsi)
        : m_event(std::move(event)), m_registration(std::move(registration)), m_gsi(gsi) {}
    EventFd m_event;
    kvm::IrqFd m_registration;
    uint32_t m_gsi;
};

}  // namespace vmm
