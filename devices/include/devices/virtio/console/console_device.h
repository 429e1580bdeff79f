// virtio-console (virtio 1.2 §5.3) with a single port and no multiport: receiveq
// (0) carries host input to the guest, transmitq (1) guest output to the host.
// Output goes to a sink like the serial console's; input is buffered (bounded)
// until the guest posts receive buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/result.h"
#include "devices/virtio/virtio_device.h"

namespace vmm::devices::virtio {

class ConsoleDevice final : public VirtioDevice {
public:
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint16_t kReceiveQueue = 0;
    static constexpr uint16_t kTransmitQueue = 1;
    // Host input held while the guest has no receive buffers posted.
    static constexpr size_t kInputCapacity = 4096;
    // struct virtio_console_config: le16 cols, le16 rows, le32 max_nr_ports, le32
    // emerg_wr. Only meaningful with features we do not offer, so all fields but
    // max_nr_ports read as zero.
    static constexpr uint64_t kConfigMaxNrPorts = 4;
    static constexpr uint64_t kConfigSize = 12;

    using Output = std::function<void(std::span<const std::byte>)>;

    // `output` receives the guest's transmitted bytes; an empty function discards them.
    explicit ConsoleDevice(Output output) : m_output(std::move(output)) {}

    uint32_t device_type() const override { return kIdConsole; }
    std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize, kQueueSize}; }
    uint64_t device_features() const override {
        return kFeatureVersion1 | kFeatureIndirectDesc | kFeatureEventIdx;
    }
    void read_config(uint64_t offset, std::span<std::byte> data) const override;
    void write_config(uint64_t offset, std::span<const std::byte> data) override;
    [[nodiscard]] Result<void> activate(ActivateContext context) override;
    void reset() override;
    void process_queue(uint16_t index) override;
    std::map<std::string, uint64_t> counters() const override;

    // Queues host input for the guest and delivers what fits into posted receive
    // buffers. Returns how many bytes were accepted (the caller keeps the rest).
    size_t enqueue_input(std::span<const std::byte> bytes);
    // Free space in the input buffer.
    size_t input_space() const;

private:
    struct Active {
        const memory::GuestMemory* memory;
        std::vector<Queue> queues;
        std::shared_ptr<VirtioInterrupt> interrupt;
    };
    // What processing asks for once the lock is dropped.
    struct Effects {
        std::shared_ptr<VirtioInterrupt> interrupt;
        bool notify_rx = false;
        bool notify_tx = false;
        bool needs_reset = false;
    };

    // Both run with m_mutex held and m_active set.
    void deliver_input(Effects& effects);
    void transmit(Effects& effects);
    // Copies a chain's readable buffers to the sink; returns the bytes sent.
    uint64_t transmit_chain(const memory::GuestMemory& mem, const DescriptorChain& chain);
    // Moves buffered input into a chain's writable buffers; returns the bytes written.
    uint32_t fill_receive_chain(const memory::GuestMemory& mem, const DescriptorChain& chain);
    // needs_notification for queue `index` after used entries were added.
    bool should_notify(uint16_t index, Effects& effects);
    void apply(const Effects& effects);
    [[nodiscard]] bool usable() const { return m_active && !m_broken; }

    mutable std::mutex m_mutex;
    Output m_output;
    std::deque<std::byte> m_input;
    std::optional<Active> m_active;
    bool m_broken = false;  // DEVICE_NEEDS_RESET was raised; wait for reset()
    uint64_t m_tx_bytes = 0;
    uint64_t m_rx_bytes = 0;
    log::RateLimiter m_log_limiter;
};

}  // namespace vmm::devices::virtio
