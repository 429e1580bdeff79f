// A minimal i8042 keyboard controller (ports 0x60 data at offset 0, 0x64
// status/command at offset 4, IRQ 1), after Firecracker's i8042: enough for
// Linux to probe it, reboot through it (command 0xFE with `reboot=k`), and
// receive a Ctrl+Alt+Del from the VMM. Only byte-wide accesses are handled;
// wider ones read as zero and are ignored on write.
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

class I8042 final : public BusDevice {
public:
    static constexpr uint64_t kBase = 0x60;
    static constexpr uint64_t kSize = 5;  // 0x60..0x64
    static constexpr uint64_t kDataOffset = 0;
    static constexpr uint64_t kCommandOffset = 4;

    static constexpr uint8_t kStatusOutputFull = 0x01;  // OBF
    static constexpr uint8_t kStatusCommandData = 0x08;  // last write was to the command port
    static constexpr uint8_t kStatusKbdEnabled = 0x10;
    static constexpr uint8_t kCtrKbdInterrupt = 0x01;
    static constexpr uint8_t kCtrSystemFlag = 0x04;  // POST passed
    static constexpr uint8_t kCtrKbdDisabled = 0x10;
    static constexpr uint8_t kCtrAuxDisabled = 0x20;
    // Bounded like FC's: the guest drains it; a full buffer drops new bytes.
    static constexpr size_t kBufferSize = 16;

    // `on_reset` runs (outside the device lock) when the guest pulses the CPU
    // reset line; it may be empty.
    I8042(std::shared_ptr<InterruptLine> kbd_irq, std::function<void()> on_reset);

    void read(uint64_t offset, std::span<std::byte> data) override;
    void write(uint64_t offset, std::span<const std::byte> data) override;

    // Queues the set-2 scan codes of Ctrl+Alt+Del and raises IRQ 1 when the
    // CTR enables keyboard interrupts. Returns false when the buffer is full.
    bool trigger_ctrl_alt_del();

private:
    struct Effects {
        bool interrupt = false;
        bool reset = false;
    };

    Effects write_command(uint8_t command);
    Effects write_data(uint8_t value);
    bool push(uint8_t byte);
    void flush();
    bool kbd_interrupt_enabled() const;
    void apply(const Effects& effects);

    std::shared_ptr<InterruptLine> m_irq;
    std::function<void()> m_on_reset;

    mutable std::mutex m_mutex;
    std::deque<uint8_t> m_buffer;
    uint8_t m_status = kStatusKbdEnabled;
    uint8_t m_control = kCtrSystemFlag | kCtrKbdInterrupt;
    uint8_t m_output_port = 0;
    uint8_t m_pending_command = 0;  // command waiting for its data byte
};

}  // namespace vmm::devices
