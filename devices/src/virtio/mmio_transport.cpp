#include "devices/virtio/mmio_transport.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/log.h"

namespace vmm::devices::virtio {
namespace {

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

uint32_t low32(uint64_t v) { return static_cast<uint32_t>(v); }
uint32_t high32(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
uint64_t with_low(uint64_t v, uint32_t low) { return (v & ~0xffffffffull) | low; }
uint64_t with_high(uint64_t v, uint32_t high) {
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

}  // namespace

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

uint32_t MmioTransport::State::read_register(uint64_t offset) {
    Queue* q = selected_queue();
    switch (offset) {
        case kRegMagic: return kMagicValue;
        case kRegVersion: return kVersion;
        case kRegDeviceId: return device_type;
        case kRegVendorId: return kVendorId;
        case kRegDeviceFeatures:
            if (device_features_sel == 0) return low32(device_features);
            if (device_features_sel == 1) return high32(device_features);
            return 0;
        case kRegQueueNumMax: return q ? q->max_size() : 0;
        case kRegQueueNum: return q ? q->size() : 0;
        case kRegQueueReady: return q && q->ready() ? 1 : 0;
        case kRegQueueDescLow: return q ? low32(q->desc_table().raw) : 0;
        case kRegQueueDescHigh: return q ? high32(q->desc_table().raw) : 0;
        case kRegQueueDriverLow: return q ? low32(q->avail_ring().raw) : 0;
        case kRegQueueDriverHigh: return q ? high32(q->avail_ring().raw) : 0;
        case kRegQueueDeviceLow: return q ? low32(q->used_ring().raw) : 0;
        case kRegQueueDeviceHigh: return q ? high32(q->used_ring().raw) : 0;
        case kRegInterruptStatus: {
            std::lock_guard lock(signals->mutex);
            return signals->interrupt_status;
        }
        case kRegStatus: return read_status();
        // No shared memory regions: a length of ~0 tells the driver so (§4.2.2).
        case kRegShmLenLow:
        case kRegShmLenHigh: return 0xffffffff;
        case kRegConfigGeneration: {
            std::lock_guard lock(signals->mutex);
            return signals->config_generation;
        }
        default: return 0;  // write-only or unimplemented
    }
}

void MmioTransport::State::write_register(uint64_t offset, uint32_t value, bool& fire) {
    switch (offset) {
        case kRegDeviceFeaturesSel: device_features_sel = value; return;
        case kRegDriverFeaturesSel: driver_features_sel = value; return;
        case kRegDriverFeatures:
            // Only while negotiating: after DRIVER and before FEATURES_OK.
            if ((status & kStatusDriver) == 0 || (status & kStatusFeaturesOk) != 0) {
                warn("DriverFeatures written in status {:#x}, ignored", status);
            } else if (driver_features_sel == 0) {
                driver_features = with_low(driver_features, value);
            } else if (driver_features_sel == 1) {
                driver_features = with_high(driver_features, value);
            }
            return;
        case kRegQueueSel: queue_sel = value; return;
        case kRegInterruptAck: {
            std::lock_guard lock(signals->mutex);
            signals->interrupt_status &= ~value;
            return;
        }
        case kRegStatus: write_status(value, fire); return;
        default: write_queue_register(offset, value); return;
    }
}

void MmioTransport::State::write_queue_register(uint64_t offset, uint32_t value) {
    const bool is_queue_register = offset == kRegQueueNum || offset == kRegQueueReady ||
                                   (offset >= kRegQueueDescLow && offset <= kRegQueueDeviceHigh &&
                                    offset % 16 < 8);
    if (!is_queue_register) {
        warn("write of {:#x} to read-only/unknown register {:#x} ignored", value, offset);
        return;
    }
    Queue* q = selected_queue();
    if (q == nullptr) {
        warn("queue register {:#x} written for nonexistent queue {}", offset, queue_sel);
        return;
    }
    // The device owns copies of the queues from DRIVER_OK on.
    if (status & kStatusDriverOk) {
        warn("queue register {:#x} written after DRIVER_OK, ignored", offset);
        return;
    }
    // Ring addresses come in low/high halves at +0/+4.
    auto half = [&](memory::GuestAddress a) {
        return memory::GuestAddress(offset % 8 == 0 ? with_low(a.raw, value)
                                                    : with_high(a.raw, value));
    };
    if (offset == kRegQueueNum) {
        if (value > q->max_size()) {
            warn("QueueNum {} > QueueNumMax {} for queue {}, ignored", value, q->max_size(),
                 queue_sel);
        } else {
            q->set_size(static_cast<uint16_t>(value));
        }
    } else if (offset == kRegQueueReady) {
        q->set_ready(value == 1);
    } else if (offset <= kRegQueueDescHigh) {
        q->set_desc_table(half(q->desc_table()));
    } else if (offset <= kRegQueueDriverHigh) {
        q->set_avail_ring(half(q->avail_ring()));
    } else {
        q->set_used_ring(half(q->used_ring()));
    }
}

// The driver may only add bits, in the order of virtio 1.2 §3.1.1; a bit whose
// predecessor is missing is dropped (so the read-back status shows the refusal).
void MmioTransport::State::write_status(uint32_t value, bool& fire) {
    if (value == 0) {
        reset();
        return;
    }
    if (value & ~kDriverStatusBits) warn("device-owned status bits in {:#x} ignored", value);
    const uint32_t wanted = value & kDriverStatusBits;
    if ((wanted & status) != status) {
        warn("status {:#x} -> {:#x} clears bits without a reset, ignored", status, value);
        return;
    }
    const uint32_t added = wanted & ~status;
    uint32_t next = status;
    if (added & kStatusAcknowledge) next |= kStatusAcknowledge;
    if (added & kStatusDriver) {
        if (next & kStatusAcknowledge) next |= kStatusDriver;
        else warn("DRIVER set before ACKNOWLEDGE, ignored");
    }
    if (added & kStatusFeaturesOk) {
        if ((next & kStatusDriver) == 0) {
            warn("FEATURES_OK set before DRIVER, ignored");
        } else if (!features_acceptable()) {
            warn("driver features {:#x} not acceptable (offered {:#x}, VERSION_1 required)",
                 driver_features, device_features);
        } else {
            next |= kStatusFeaturesOk;
        }
    }
    if (added & kStatusFailed) next |= kStatusFailed;
    if (added & kStatusDriverOk) {
        if ((next & kStatusFeaturesOk) == 0) warn("DRIVER_OK set before FEATURES_OK, ignored");
        else if (next & kStatusFailed) warn("DRIVER_OK set after FAILED, ignored");
        else next |= kStatusDriverOk;
    }
    const bool starting = (next & kStatusDriverOk) && !(status & kStatusDriverOk);
    status = next;
    if (starting) fire = activate();
}

void MmioTransport::State::reset() {
    // A device that saw DRIVER_OK may hold queues even if its activate failed.
    if (status & kStatusDriverOk) device.reset();
    for (Queue& q : queues) q = Queue(q.max_size());
    driver_features = 0;
    device_features_sel = 0;
    driver_features_sel = 0;
    queue_sel = 0;
    status = 0;
    activated = false;
    std::lock_guard lock(signals->mutex);
    ++signals->epoch;  // late signals from the old activation are dropped
    signals->interrupt_status = 0;
    signals->needs_reset = false;
    signals->driver_ok = false;
}

bool MmioTransport::State::activate() {
    uint64_t epoch = 0;
    {
        std::lock_guard lock(signals->mutex);
        signals->driver_ok = true;
        epoch = signals->epoch;
    }
    ActivateContext context;
    context.memory = &memory;
    context.acked_features = driver_features;
    context.interrupt = std::make_shared<Interrupt>(signals, epoch);
    for (size_t i = 0; i < queues.size(); ++i) {
        Queue q = queues[i];
        q.set_event_idx(driver_features & kFeatureEventIdx);
        q.set_indirect_allowed(driver_features & kFeatureIndirectDesc);
        if (q.ready()) {
            if (auto valid = q.validate(memory); !valid) {
                warn("queue {} rejected at DRIVER_OK: {}", i, valid.error().message());
                return signals->mark_needs_reset(epoch);
            }
        }
        context.queues.push_back(q);
    }
    if (auto result = device.activate(std::move(context)); !result) {
        warn("activation failed: {}", result.error().message());
        return signals->mark_needs_reset(epoch);
    }
    activated = true;
    return false;
}

MmioTransport::MmioTransport(std::shared_ptr<VirtioDevice> device,
                             const memory::GuestMemory& memory,
                             std::shared_ptr<InterruptLine> irq)
    : m_device(std::move(device)),
      m_state(std::make_unique<State>(*m_device, memory, std::move(irq))) {}

MmioTransport::~MmioTransport() = default;

void MmioTransport::read(uint64_t offset, std::span<std::byte> data) {
    std::fill(data.begin(), data.end(), std::byte{0});
    if (offset >= kMmioConfigOffset) {
        // Config space: any size the bus delivers, kept inside the slot.
        if (data.empty() || offset > kMmioSlotSize || data.size() > kMmioSlotSize - offset) return;
        std::lock_guard lock(m_state->mutex);
        m_device->read_config(offset - kMmioConfigOffset, data);
        return;
    }
    std::lock_guard lock(m_state->mutex);
    if (data.size() != 4 || offset % 4 != 0) {
        m_state->warn("{}-byte read at {:#x} ignored (registers are 32-bit)", data.size(), offset);
        return;
    }
    const uint32_t value = m_state->read_register(offset);
    std::memcpy(data.data(), &value, sizeof(value));  // x86 is little-endian like virtio
}

void MmioTransport::write(uint64_t offset, std::span<const std::byte> data) {
    if (offset >= kMmioConfigOffset) {
        if (data.empty() || offset > kMmioSlotSize || data.size() > kMmioSlotSize - offset) return;
        std::lock_guard lock(m_state->mutex);
        m_device->write_config(offset - kMmioConfigOffset, data);
        return;
    }
    uint32_t value = 0;
    bool fire = false;
    {
        std::lock_guard lock(m_state->mutex);
        if (data.size() != 4 || offset % 4 != 0) {
            m_state->warn("{}-byte write at {:#x} ignored (registers are 32-bit)", data.size(),
                          offset);
            return;
        }
        std::memcpy(&value, data.data(), sizeof(value));
        if (offset != kRegQueueNotify) m_state->write_register(offset, value, fire);
    }
    if (offset != kRegQueueNotify) {
        // Raised outside the lock (an activation failure notifies the driver).
        m_state->signals->fire(fire);
        return;
    }
    // QueueNotify without an ioeventfd: handled like one, outside the lock.
    if (value <= UINT16_MAX) {
        notify_queue(static_cast<uint16_t>(value));
    } else {
        m_state->warn("QueueNotify value {:#x} out of range, ignored", value);
    }
}

void MmioTransport::notify_queue(uint16_t index) {
    {
        std::lock_guard lock(m_state->mutex);
        if (!m_state->activated || index >= m_state->queues.size()) {
            m_state->warn("notify of queue {} ignored (activated: {})", index,
                          m_state->activated);
            return;
        }
    }
    // Without the transport lock: the device takes its own lock and may signal.
    m_device->process_queue(index);
}

uint16_t MmioTransport::num_queues() const {
    std::lock_guard lock(m_state->mutex);
    return static_cast<uint16_t>(m_state->queues.size());
}

bool MmioTransport::activated() const {
    std::lock_guard lock(m_state->mutex);
    return m_state->activated;
}

uint32_t MmioTransport::status() const {
    std::lock_guard lock(m_state->mutex);
    return m_state->read_status();
}

}  // namespace vmm::devices::virtio
