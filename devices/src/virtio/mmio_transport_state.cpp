// The virtio-mmio register state machine: register reads and writes, status
// transitions, reset and activation at DRIVER_OK.
#include "mmio_transport_state.h"

namespace vmm::devices::virtio {

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

}  // namespace vmm::devices::virtio
