// Private to the virtio-mmio transport: register constants, the interrupt
// state shared with devices, and the register state machine (State), split from
// mmio_transport.cpp to keep each file small.
#pragma once

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "devices/virtio/mmio_transport.h"

namespace vmm::devices::virtio {
namespace mmio_detail {

constexpr uint32_t kMagicValue = 0x74726976;  // "virt"
constexpr uint32_t kVersion = 2;              // modern only
// Our own vendor ID: the bytes "\0VMM" read as a little-endian word. Linux uses
// it only for modalias matching.
constexpr uint32_t kVendorId = 0x4d4d5600;

// Register offsets (virtio 1.2 §4.2.2).
constexpr uint64_t kRegMagic = 0x000;
constexpr uint64_t kRegVersion = 0x004;
constexpr uint64_t kRegDeviceId = 0x008;
constexpr uint64_t kRegVendorId = 0x00c;
constexpr uint64_t kRegDeviceFeatures = 0x010;
constexpr uint64_t kRegDeviceFeaturesSel = 0x014;
constexpr uint64_t kRegDriverFeatures = 0x020;
constexpr uint64_t kRegDriverFeaturesSel = 0x024;
constexpr uint64_t kRegQueueSel = 0x030;
constexpr uint64_t kRegQueueNumMax = 0x034;
constexpr uint64_t kRegQueueNum = 0x038;
constexpr uint64_t kRegQueueReady = 0x044;
constexpr uint64_t kRegQueueNotify = kMmioQueueNotifyOffset;
constexpr uint64_t kRegInterruptStatus = 0x060;
constexpr uint64_t kRegInterruptAck = 0x064;
constexpr uint64_t kRegStatus = 0x070;
constexpr uint64_t kRegQueueDescLow = 0x080;
constexpr uint64_t kRegQueueDescHigh = 0x084;
constexpr uint64_t kRegQueueDriverLow = 0x090;
constexpr uint64_t kRegQueueDriverHigh = 0x094;
constexpr uint64_t kRegQueueDeviceLow = 0x0a0;
constexpr uint64_t kRegQueueDeviceHigh = 0x0a4;
constexpr uint64_t kRegShmLenLow = 0x0b0;
constexpr uint64_t kRegShmLenHigh = 0x0b4;
constexpr uint64_t kRegConfigGeneration = 0x0fc;

// Device status bits (virtio 1.2 §2.1).
constexpr uint32_t kStatusAcknowledge = 1;
constexpr uint32_t kStatusDriver = 2;
constexpr uint32_t kStatusDriverOk = 4;
constexpr uint32_t kStatusFeaturesOk = 8;
constexpr uint32_t kStatusNeedsReset = 64;
constexpr uint32_t kStatusFailed = 128;
constexpr uint32_t kDriverStatusBits =
    kStatusAcknowledge | kStatusDriver | kStatusDriverOk | kStatusFeaturesOk | kStatusFailed;

// InterruptStatus bits.
constexpr uint32_t kIntUsedBuffer = 1;
constexpr uint32_t kIntConfigChange = 2;

inline uint32_t low32(uint64_t v) { return static_cast<uint32_t>(v); }
inline uint32_t high32(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
inline uint64_t with_low(uint64_t v, uint32_t low) { return (v & ~0xffffffffull) | low; }
inline uint64_t with_high(uint64_t v, uint32_t high) {
    return (v & 0xffffffffull) | (static_cast<uint64_t>(high) << 32);
}

// Interrupt state shared with the Interrupt objects handed to the device: the
// device may keep one past a reset or past the transport itself. Its mutex is a
// leaf lock (taken after the transport's and the device's, never calls out), so
// the event-loop thread can signal while a vCPU holds the transport mutex.
struct Signals {
    std::mutex mutex;
    std::shared_ptr<InterruptLine> irq;
    uint64_t epoch = 0;  // bumped at every reset; older Interrupts are ignored
    uint32_t interrupt_status = 0;
    uint32_t config_generation = 0;  // monotonic, also across resets
    bool needs_reset = false;
    bool driver_ok = false;

    // Sets `bits` (and bumps the generation for a config change). True when the
    // caller must trigger the line, which it does outside the lock.
    bool raise(uint64_t from_epoch, uint32_t bits, bool config_changed) {
        std::lock_guard lock(mutex);
        if (from_epoch != epoch) return false;
        if (config_changed) ++config_generation;
        interrupt_status |= bits;
        return true;
    }
    // DEVICE_NEEDS_RESET; the driver is only notified once DRIVER_OK was set
    // (virtio 1.2 §2.1.2).
    bool mark_needs_reset(uint64_t from_epoch) {
        std::lock_guard lock(mutex);
        if (from_epoch != epoch) return false;
        needs_reset = true;
        if (!driver_ok) return false;
        interrupt_status |= kIntConfigChange;
        return true;
    }
    void fire(bool needed) const {
        if (needed && irq) irq->trigger();
    }
};

}  // namespace mmio_detail

using namespace mmio_detail;  // NOLINT: private header of the transport

class MmioTransport::Interrupt final : public VirtioInterrupt {
public:
    Interrupt(std::shared_ptr<Signals> signals, uint64_t epoch)
        : m_signals(std::move(signals)), m_epoch(epoch) {}

    void signal_used_queue(uint16_t /*queue_index*/) override {
        m_signals->fire(m_signals->raise(m_epoch, kIntUsedBuffer, false));
    }
    void signal_config_change() override {
        m_signals->fire(m_signals->raise(m_epoch, kIntConfigChange, true));
    }
    void set_device_needs_reset() override {
        m_signals->fire(m_signals->mark_needs_reset(m_epoch));
    }

private:
    std::shared_ptr<Signals> m_signals;
    uint64_t m_epoch;
};

struct MmioTransport::State {
    State(VirtioDevice& dev, const memory::GuestMemory& mem, std::shared_ptr<InterruptLine> irq)
        : device(dev), memory(mem), device_type(dev.device_type()),
          device_features(dev.device_features()),
          signals(std::make_shared<Signals>()) {
        signals->irq = std::move(irq);
        for (uint16_t max : dev.queue_max_sizes()) queues.emplace_back(max);
    }

    VirtioDevice& device;
    const memory::GuestMemory& memory;
    const uint32_t device_type;
    const uint64_t device_features;
    const std::shared_ptr<Signals> signals;

    mutable std::mutex mutex;  // everything below; taken before the device's lock
    std::vector<Queue> queues;
    uint64_t driver_features = 0;
    uint32_t device_features_sel = 0;
    uint32_t driver_features_sel = 0;
    uint32_t queue_sel = 0;
    uint32_t status = 0;  // driver-set bits; DEVICE_NEEDS_RESET lives in signals
    bool activated = false;
    log::RateLimiter limiter;

    template <typename... Args>
    void warn(fmt::format_string<Args...> f, Args&&... args) {
        if (limiter.allow()) {
            log::warn("virtio-mmio (type {}): {}", device_type,
                      fmt::format(f, std::forward<Args>(args)...));
        }
    }

    Queue* selected_queue() { return queue_sel < queues.size() ? &queues[queue_sel] : nullptr; }
    uint32_t read_status() const {
        std::lock_guard lock(signals->mutex);
        return status | (signals->needs_reset ? kStatusNeedsReset : 0);
    }

    uint32_t read_register(uint64_t offset);
    // `fire` is set when the interrupt line must be raised after unlocking.
    void write_register(uint64_t offset, uint32_t value, bool& fire);
    void write_queue_register(uint64_t offset, uint32_t value);
    void write_status(uint32_t value, bool& fire);
    bool features_acceptable() const {
        return (driver_features & ~device_features) == 0 && (driver_features & kFeatureVersion1);
    }
    void reset();
    bool activate();
};


}  // namespace vmm::devices::virtio
