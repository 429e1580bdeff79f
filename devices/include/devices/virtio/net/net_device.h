// virtio-net (virtio 1.2 §5.1) on a tap: one receive and one transmit queue, no
// offloads, no mergeable rx buffers. Every frame crosses the device with the 12-byte
// virtio_net_hdr in front, which the tap (IFF_VNET_HDR) understands directly.
//
// Event loop contract: watch each fd of backend_fds() with EPOLLIN | EPOLLET
// (kBackendEpollEvents) and call process_backend() when it fires. When the guest has
// no receive buffers the device leaves frames in the tap (the kernel queues and, when
// full, drops them) and resumes reading when the guest adds buffers
// (process_queue(kRxQueue)). Edge triggering is what keeps the loop from spinning on
// a readable tap while the guest is not taking frames.
#pragma once

#include <sys/epoll.h>

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/log.h"
#include "devices/virtio/net/mac.h"
#include "devices/virtio/net/net_backend.h"
#include "devices/virtio/net/tap.h"
#include "devices/virtio/virtio_device.h"

namespace vmm::devices::virtio::net {

// Feature bits (virtio 1.2 §5.1.3) and status (§5.1.4).
inline constexpr uint64_t kNetFeatureMac = 1ull << 5;
inline constexpr uint64_t kNetFeatureStatus = 1ull << 16;
inline constexpr uint16_t kNetStatusLinkUp = 1;

inline constexpr uint16_t kRxQueue = 0;
inline constexpr uint16_t kTxQueue = 1;
inline constexpr uint16_t kNetQueueSize = 256;
// Largest Ethernet frame accepted from the guest or delivered to it (without
// offloads real frames are MTU-sized); buffers add the 12-byte virtio_net_hdr.
inline constexpr size_t kMaxFrameSize = 65550;
inline constexpr size_t kMaxBufferSize = kMaxFrameSize + kVnetHdrSize;
inline constexpr uint32_t kBackendEpollEvents = EPOLLIN | EPOLLET;

struct NetOptions {
    std::string tap;                  // tap name; created if it does not exist
    std::optional<std::string> ip;    // host-side IPv4 address of the tap
    std::optional<std::string> mask;  // its netmask
    MacAddress mac{};                 // guest MAC (the VMM picks random_mac() if unset)
    std::string id;                   // for logs and the API
};

class NetDevice final : public VirtioDevice {
public:
    // Opens and configures the tap named in `options`.
    [[nodiscard]] static Result<std::shared_ptr<NetDevice>> create(const NetOptions& options);

    NetDevice(std::unique_ptr<NetBackend> backend, const MacAddress& mac, std::string id);

    uint32_t device_type() const override { return kIdNet; }
    std::vector<uint16_t> queue_max_sizes() const override {
        return {kNetQueueSize, kNetQueueSize};
    }
    uint64_t device_features() const override;
    void read_config(uint64_t offset, std::span<std::byte> data) const override;
    void write_config(uint64_t offset, std::span<const std::byte> data) override;
    Result<void> activate(ActivateContext context) override;
    void reset() override;
    void process_queue(uint16_t index) override;
    std::map<std::string, uint64_t> counters() const override;

    // The backend fd for the event loop (see the contract above).
    std::vector<int> backend_fds() const override;
    void process_backend(int fd, uint32_t events) override;

    const MacAddress& mac() const { return m_mac; }
    const std::string& id() const { return m_id; }

private:
    // Both run with m_mutex held and the device active.
    void process_rx();
    void process_tx();
    // Delivers one frame from the backend into one rx chain; false when there is
    // nothing more to do now (no frame, no buffer, or the queue broke).
    bool receive_one();
    // Sends one tx chain; false when the ring is empty or the queue broke.
    bool transmit_one();
    // The guest broke the protocol: stop using the queues until reset.
    void fail(const Error& error);
    void complete(uint16_t queue, uint16_t head, uint32_t len);
    void notify_if_needed(uint16_t queue);

    std::unique_ptr<NetBackend> m_backend;
    const MacAddress m_mac;
    const std::string m_id;

    mutable std::mutex m_mutex;
    bool m_active = false;
    bool m_broken = false;
    const memory::GuestMemory* m_mem = nullptr;
    std::vector<Queue> m_queues;
    std::shared_ptr<VirtioInterrupt> m_interrupt;
    std::array<bool, 2> m_used_added{};
    // Host bounce buffers, allocated once: tx gathers a chain here; rx lets a frame
    // longer than the guest's buffer spill here so its true length is known.
    std::vector<std::byte> m_tx_buffer;
    std::vector<std::byte> m_rx_spill;
    log::RateLimiter m_log_limit;

    std::atomic<uint64_t> m_rx_bytes{0}, m_rx_frames{0}, m_rx_dropped{0};
    std::atomic<uint64_t> m_tx_bytes{0}, m_tx_frames{0}, m_tx_dropped{0};
};

}  // namespace vmm::devices::virtio::net
