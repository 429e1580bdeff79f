// A 16550A-compatible UART (COM1 at port 0x3f8, IRQ 4) with the register
// semantics Linux's 8250 driver probes for, modelled on Firecracker's
// vm-superio serial device. Transmission is instantaneous: THR is always
// empty, so LSR.THRE/TEMT always read 1 and every THR write re-arms THRE.
//
// Accesses wider than one byte use only their first byte; the other bytes of
// a read are zero. Offsets past 7 read as zero and ignore writes.
// The PC's OUT2 interrupt gate is not modelled: enabled conditions always
// trigger the line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>

#include "devices/bus_device.h"

namespace vmm::devices {

class Serial8250 final : public BusDevice {
public:
    static constexpr uint64_t kComBase = 0x3f8;
    static constexpr uint64_t kRegisterCount = 8;
    // Like a 16550's receive FIFO: enqueue_input() takes at most this many bytes
    // until the guest drains them; the caller keeps the rest and retries.
    static constexpr size_t kInputCapacity = 64;

    using Output = std::function<void(std::span<const std::byte>)>;

    // `output` receives each transmitted byte; an empty function discards them.
    Serial8250(std::shared_ptr<InterruptLine> irq, Output output);

    void read(uint64_t offset, std::span<std::byte> data) override;
    void write(uint64_t offset, std::span<const std::byte> data) override;

    // Queues host input (console keystrokes) for the guest. Returns how many
    // bytes fit; raises the interrupt when some were accepted and IER.RDI is set.
    size_t enqueue_input(std::span<const std::byte> bytes);
    bool input_space_available() const;

private:
    // Side effects of a register access, carried out after the lock is dropped
    // so that neither the console writer nor the irqfd runs under it.
    struct Effects {
        bool transmit = false;
        std::byte tx_byte{0};
        bool interrupt = false;
    };

    uint8_t read_register(uint64_t offset);
    Effects write_register(uint64_t offset, uint8_t value);
    Effects write_ier(uint8_t value);
    Effects write_thr(uint8_t value);
    uint8_t interrupt_identification() const;
    uint8_t modem_status() const;
    bool dlab() const;
    bool loopback() const;
    void apply(const Effects& effects);

    std::shared_ptr<InterruptLine> m_irq;
    Output m_output;

    mutable std::mutex m_mutex;
    std::deque<uint8_t> m_input;
    bool m_thre_pending = false;
    bool m_overrun = false;
    uint8_t m_ier = 0;
    uint8_t m_fcr = 0;
    uint8_t m_lcr = 0x03;  // 8N1, as after a reset by most firmware
    uint8_t m_mcr = 0x08;  // OUT2 set, as vm-superio
    uint8_t m_scr = 0;
    uint8_t m_dll = 0x0c;  // 9600 baud at the 1.8432 MHz reference clock
    uint8_t m_dlm = 0;
};

}  // namespace vmm::devices
