// The interface between a virtio transport (virtio-mmio here) and a device model.
// The transport runs the status/feature state machine and owns the queue registers;
// the device never parses transport registers. vCPU threads call the transport,
// which calls read_config/write_config/activate/reset; the VMM's event-loop thread
// calls process_queue when a queue's ioeventfd fires. Devices lock themselves.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace vmm::devices::virtio {

// Device IDs (virtio 1.2 §5).
inline constexpr uint32_t kIdNet = 1;
inline constexpr uint32_t kIdBlock = 2;
inline constexpr uint32_t kIdConsole = 3;
inline constexpr uint32_t kIdRng = 4;
inline constexpr uint32_t kIdBalloon = 5;

// Feature bits shared by all devices.
inline constexpr uint64_t kFeatureIndirectDesc = 1ull << 28;
inline constexpr uint64_t kFeatureEventIdx = 1ull << 29;
inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;

// How a device signals the driver; implemented by the transport.
class VirtioInterrupt {
public:
    virtual ~VirtioInterrupt() = default;
    // Used-buffer notification (sets InterruptStatus bit 0 and raises the IRQ).
    virtual void signal_used_queue(uint16_t queue_index) = 0;
    // Configuration change (bit 1, bumps ConfigGeneration).
    virtual void signal_config_change() = 0;
    // The driver broke the protocol: sets DEVICE_NEEDS_RESET and notifies.
    virtual void set_device_needs_reset() = 0;
};

// Which thread handles a queue's notifications. event_loop: an ioeventfd watched by
// the VMM's event loop (the default). vcpu_thread: no ioeventfd; the notifying vCPU
// runs process_queue() itself on its MMIO exit (for tiny synchronous requests the
// guest spins on). worker_thread: an ioeventfd watched by a per-device worker thread.
enum class NotifyPath { event_loop, vcpu_thread, worker_thread };

struct ActivateContext {
    const memory::GuestMemory* memory = nullptr;
    std::vector<Queue> queues;  // as configured by the driver; validated
    uint64_t acked_features = 0;
    std::shared_ptr<VirtioInterrupt> interrupt;
};

class VirtioDevice {
public:
    virtual ~VirtioDevice() = default;

    virtual uint32_t device_type() const = 0;
    // One entry per queue the device offers (may depend on features it offers).
    virtual std::vector<uint16_t> queue_max_sizes() const = 0;
    // Offered features; always includes kFeatureVersion1 (modern only).
    virtual uint64_t device_features() const = 0;

    // Device-specific configuration space (transport offset 0x100 + offset). Reads
    // past its end return zeros; writes the device does not allow are ignored.
    virtual void read_config(uint64_t offset, std::span<std::byte> data) const = 0;
    virtual void write_config(uint64_t offset, std::span<const std::byte> data) = 0;

    // DRIVER_OK. The device takes the queues. An Error makes the transport set
    // DEVICE_NEEDS_RESET.
    [[nodiscard]] virtual Result<void> activate(ActivateContext context) = 0;
    // Driver wrote 0 to Status: drop the queues and per-driver state.
    virtual void reset() = 0;
    // The driver notified queue `index` (event-loop thread). No-op unless active.
    virtual void process_queue(uint16_t index) = 0;
    // Where notifications of queue `index` are handled (see NotifyPath); asked once
    // when the device is placed on the bus. process_queue must be thread-safe for
    // every queue that is not on the event loop.
    virtual NotifyPath notify_path(uint16_t /*index*/) const { return NotifyPath::event_loop; }

    // Host-side fds the VMM's event loop watches for this device (tap, timerfd),
    // and their handler, called on the event-loop thread with the epoll events.
    // They are watched edge-triggered (EPOLLIN | EPOLLET): a device must drain its
    // fd, or remember that it stopped early and resume from process_queue().
    virtual std::vector<int> backend_fds() const { return {}; }
    virtual void process_backend(int /*fd*/, uint32_t /*events*/) {}

    // Counters for the API (e.g. read_bytes, write_ops; pages_inflated).
    virtual std::map<std::string, uint64_t> counters() const { return {}; }
};

}  // namespace vmm::devices::virtio
