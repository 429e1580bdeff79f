#include "devices/legacy/i8042.h"

#include <algorithm>

#include "common/log.h"

namespace vmm::devices {
namespace {

constexpr uint8_t kCmdReadCtr = 0x20;
constexpr uint8_t kCmdWriteCtr = 0x60;
constexpr uint8_t kCmdAuxDisable = 0xa7;
constexpr uint8_t kCmdAuxEnable = 0xa8;
constexpr uint8_t kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdKbdTest = 0xab;
constexpr uint8_t kCmdKbdDisable = 0xad;
constexpr uint8_t kCmdKbdEnable = 0xae;
constexpr uint8_t kCmdReadOutputPort = 0xd0;
constexpr uint8_t kCmdWriteOutputPort = 0xd1;
constexpr uint8_t kCmdResetCpu = 0xfe;

constexpr uint8_t kSelfTestPassed = 0x55;
constexpr uint8_t kInterfaceTestPassed = 0x00;
constexpr uint8_t kKbdAck = 0xfa;

// Scan code set 2: Ctrl, Alt, then the extended Delete (0xe0 0x71).
constexpr uint8_t kCtrlAltDel[] = {0x14, 0x11, 0xe0, 0x71};

}  // namespace

I8042::I8042(std::shared_ptr<InterruptLine> kbd_irq, std::function<void()> on_reset)
    : m_irq(std::move(kbd_irq)), m_on_reset(std::move(on_reset)) {}

void I8042::read(uint64_t offset, std::span<std::byte> data) {
    std::fill(data.begin(), data.end(), std::byte{0});
    if (data.size() != 1) return;
    Effects effects;
    {
        std::lock_guard lock(m_mutex);
        if (offset == kCommandOffset) {
            data[0] = std::byte{m_status};
        } else if (offset == kDataOffset && !m_buffer.empty()) {
            data[0] = std::byte{m_buffer.front()};
            m_buffer.pop_front();
            if (m_buffer.empty()) {
                m_status &= static_cast<uint8_t>(~kStatusOutputFull);
            } else {
                // More keyboard bytes wait: keep the guest's handler coming back.
                effects.interrupt = kbd_interrupt_enabled();
            }
        }
    }
    apply(effects);
}

void I8042::write(uint64_t offset, std::span<const std::byte> data) {
    if (data.size() != 1) return;
    const auto value = std::to_integer<uint8_t>(data[0]);
    Effects effects;
    {
        std::lock_guard lock(m_mutex);
        if (offset == kCommandOffset) {
            effects = write_command(value);
        } else if (offset == kDataOffset) {
            effects = write_data(value);
        }
    }
    apply(effects);
}

bool I8042::trigger_ctrl_alt_del() {
    Effects effects;
    {
        std::lock_guard lock(m_mutex);
        if (m_buffer.size() + std::size(kCtrlAltDel) > kBufferSize) return false;
        for (uint8_t code : kCtrlAltDel) push(code);
        effects.interrupt = kbd_interrupt_enabled();
    }
    if (!effects.interrupt) log::warn("i8042: Ctrl+Alt+Del queued but keyboard interrupts are off");
    apply(effects);
    return true;
}

I8042::Effects I8042::write_command(uint8_t command) {
    Effects effects;
    switch (command) {
        case kCmdResetCpu:
            effects.reset = true;
            break;
        case kCmdReadCtr:
            flush();
            push(m_control);
            break;
        case kCmdWriteCtr:
        case kCmdWriteOutputPort:
            flush();
            m_status |= kStatusCommandData;
            m_pending_command = command;
            break;
        case kCmdReadOutputPort:
            flush();
            push(m_output_port);
            break;
        case kCmdSelfTest:
            flush();
            push(kSelfTestPassed);
            break;
        case kCmdKbdTest:
            flush();
            push(kInterfaceTestPassed);
            break;
        case kCmdAuxDisable:
            m_control |= kCtrAuxDisabled;
            break;
        case kCmdAuxEnable:
            m_control &= static_cast<uint8_t>(~kCtrAuxDisabled);
            break;
        case kCmdKbdDisable:
            m_control |= kCtrKbdDisabled;
            break;
        case kCmdKbdEnable:
            m_control &= static_cast<uint8_t>(~kCtrKbdDisabled);
            break;
        default:
            break;  // unknown controller commands are ignored, as on FC
    }
    return effects;
}

I8042::Effects I8042::write_data(uint8_t value) {
    Effects effects;
    if (m_status & kStatusCommandData) {
        // The argument of the previous controller command.
        if (m_pending_command == kCmdWriteCtr) m_control = value;
        if (m_pending_command == kCmdWriteOutputPort) m_output_port = value;
        m_status &= static_cast<uint8_t>(~kStatusCommandData);
        m_pending_command = 0;
        return effects;
    }
    // A byte for the keyboard itself: acknowledge every keyboard command. The
    // guest's atkbd waits for the ACK through IRQ 1.
    flush();
    push(kKbdAck);
    effects.interrupt = kbd_interrupt_enabled();
    return effects;
}

bool I8042::push(uint8_t byte) {
    if (m_buffer.size() >= kBufferSize) return false;
    m_buffer.push_back(byte);
    m_status |= kStatusOutputFull;
    return true;
}

void I8042::flush() {
    m_buffer.clear();
    m_status &= static_cast<uint8_t>(~kStatusOutputFull);
}

bool I8042::kbd_interrupt_enabled() const { return (m_control & kCtrKbdInterrupt) != 0; }

void I8042::apply(const Effects& effects) {
    if (effects.interrupt && m_irq) m_irq->trigger();
    if (effects.reset) {
        log::info("i8042: guest requested a CPU reset");
        if (m_on_reset) m_on_reset();
    }
}

}  // namespace vmm::devices
