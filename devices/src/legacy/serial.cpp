#include "devices/legacy/serial.h"

#include <algorithm>

namespace vmm::devices {
namespace {

// Register offsets from the base (DLAB selects DLL/DLM at 0 and 1).
constexpr uint64_t kData = 0;  // RBR (read) / THR (write) / DLL
constexpr uint64_t kIer = 1;   // or DLM
constexpr uint64_t kIir = 2;   // IIR (read) / FCR (write)
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;

constexpr uint8_t kIerRdi = 0x01;   // received data available
constexpr uint8_t kIerThri = 0x02;  // THR empty
constexpr uint8_t kIerValid = 0x0f;

constexpr uint8_t kIirNone = 0x01;
constexpr uint8_t kIirThre = 0x02;
constexpr uint8_t kIirRda = 0x04;
constexpr uint8_t kIirFifoEnabled = 0xc0;  // 16550A: both bits set when FCR.0 is

constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;
constexpr uint8_t kFcrSelfClearing = 0x06;

constexpr uint8_t kLcrDlab = 0x80;

constexpr uint8_t kMcrDtr = 0x01;
constexpr uint8_t kMcrRts = 0x02;
constexpr uint8_t kMcrOut1 = 0x04;
constexpr uint8_t kMcrOut2 = 0x08;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kMcrValid = 0x1f;

constexpr uint8_t kLsrDr = 0x01;
constexpr uint8_t kLsrOe = 0x02;
constexpr uint8_t kLsrThre = 0x20;
constexpr uint8_t kLsrTemt = 0x40;

constexpr uint8_t kMsrCts = 0x10;
constexpr uint8_t kMsrDsr = 0x20;
constexpr uint8_t kMsrRi = 0x40;
constexpr uint8_t kMsrDcd = 0x80;

}  // namespace

Serial8250::Serial8250(std::shared_ptr<InterruptLine> irq, Output output)
    : m_irq(std::move(irq)), m_output(std::move(output)) {}

void Serial8250::read(uint64_t offset, std::span<std::byte> data) {
    if (data.empty()) return;
    std::fill(data.begin(), data.end(), std::byte{0});
    std::lock_guard lock(m_mutex);
    data[0] = std::byte{read_register(offset)};
}

void Serial8250::write(uint64_t offset, std::span<const std::byte> data) {
    if (data.empty()) return;
    Effects effects;
    {
        std::lock_guard lock(m_mutex);
        effects = write_register(offset, std::to_integer<uint8_t>(data[0]));
    }
    apply(effects);
}

size_t Serial8250::enqueue_input(std::span<const std::byte> bytes) {
    Effects effects;
    size_t accepted = 0;
    {
        std::lock_guard lock(m_mutex);
        accepted = std::min(bytes.size(), kInputCapacity - m_input.size());
        for (size_t i = 0; i < accepted; ++i) m_input.push_back(std::to_integer<uint8_t>(bytes[i]));
        effects.interrupt = accepted > 0 && (m_ier & kIerRdi) != 0;
    }
    apply(effects);
    return accepted;
}

bool Serial8250::input_space_available() const {
    std::lock_guard lock(m_mutex);
    return m_input.size() < kInputCapacity;
}

bool Serial8250::dlab() const { return (m_lcr & kLcrDlab) != 0; }
bool Serial8250::loopback() const { return (m_mcr & kMcrLoop) != 0; }

uint8_t Serial8250::read_register(uint64_t offset) {
    switch (offset) {
        case kData: {
            if (dlab()) return m_dll;
            if (m_input.empty()) return 0;
            uint8_t byte = m_input.front();
            m_input.pop_front();
            return byte;
        }
        case kIer:
            return dlab() ? m_dlm : m_ier;
        case kIir: {
            uint8_t iir = interrupt_identification();
            // Reading IIR acknowledges THRE only when it is the reported source
            // (16550 datasheet); a higher-priority RDA leaves it pending.
            if ((iir & 0x0f) == kIirThre) m_thre_pending = false;
            return iir;
        }
        case kLcr:
            return m_lcr;
        case kMcr:
            return m_mcr;
        case kLsr: {
            uint8_t lsr = kLsrThre | kLsrTemt;
            if (!m_input.empty()) lsr |= kLsrDr;
            if (m_overrun) lsr |= kLsrOe;
            m_overrun = false;  // error bits clear on read
            return lsr;
        }
        case kMsr:
            return modem_status();
        case kScr:
            return m_scr;
        default:
            return 0;
    }
}

Serial8250::Effects Serial8250::write_register(uint64_t offset, uint8_t value) {
    switch (offset) {
        case kData:
            if (!dlab()) return write_thr(value);
            m_dll = value;  // divisor latch: never transmitted
            return {};
        case kIer:
            if (!dlab()) return write_ier(value);
            m_dlm = value;
            return {};
        case kIir:  // FCR
            if (value & kFcrClearRx) m_input.clear();
            m_fcr = value & static_cast<uint8_t>(~kFcrSelfClearing);
            return {};
        case kLcr:
            m_lcr = value;
            return {};
        case kMcr:
            m_mcr = value & kMcrValid;
            return {};
        case kScr:
            m_scr = value;
            return {};
        default:  // LSR and MSR writes (factory test) are ignored
            return {};
    }
}

Serial8250::Effects Serial8250::write_ier(uint8_t value) {
    Effects effects;
    const uint8_t old = m_ier;
    m_ier = value & kIerValid;
    const uint8_t enabled = m_ier & static_cast<uint8_t>(~old);
    if (enabled & kIerThri) {
        // THR is always empty, so a real 16550 asserts THRE as soon as it is
        // enabled; Linux's startup test (UART_BUG_THRE) relies on that.
        m_thre_pending = true;
        effects.interrupt = true;
    }
    if (!(m_ier & kIerThri)) m_thre_pending = false;
    if ((enabled & kIerRdi) && !m_input.empty()) effects.interrupt = true;
    return effects;
}

Serial8250::Effects Serial8250::write_thr(uint8_t value) {
    Effects effects;
    if (loopback()) {
        // Linux's autoconfig and selftests echo through loopback: the byte
        // goes straight to the receive FIFO, never to the output.
        if (m_input.size() < kInputCapacity) {
            m_input.push_back(value);
            if (m_ier & kIerRdi) effects.interrupt = true;
        } else {
            m_overrun = true;
        }
    } else {
        effects.transmit = true;
        effects.tx_byte = std::byte{value};
    }
    // The byte left THR at once: THR is empty again.
    if (m_ier & kIerThri) {
        m_thre_pending = true;
        effects.interrupt = true;
    }
    return effects;
}

uint8_t Serial8250::interrupt_identification() const {
    const uint8_t fifo = (m_fcr & kFcrEnable) ? kIirFifoEnabled : 0;
    // Priority per 16550: line status (never raised here) > RDA > THRE > modem.
    if ((m_ier & kIerRdi) && !m_input.empty()) return fifo | kIirRda;
    if ((m_ier & kIerThri) && m_thre_pending) return fifo | kIirThre;
    return fifo | kIirNone;
}

uint8_t Serial8250::modem_status() const {
    if (!loopback()) return kMsrDcd | kMsrDsr | kMsrCts;  // a peer is always connected
    // Loopback wires the MCR outputs back to the modem inputs.
    uint8_t msr = 0;
    if (m_mcr & kMcrDtr) msr |= kMsrDsr;
    if (m_mcr & kMcrRts) msr |= kMsrCts;
    if (m_mcr & kMcrOut1) msr |= kMsrRi;
    if (m_mcr & kMcrOut2) msr |= kMsrDcd;
    return msr;
}

void Serial8250::apply(const Effects& effects) {
    if (effects.transmit && m_output) m_output(std::span<const std::byte>(&effects.tx_byte, 1));
    if (effects.interrupt && m_irq) m_irq->trigger();
}

}  // namespace vmm::devices
