// virtio-rng / entropy device (virtio 1.2 §5.4): one queue of device-writable
// buffers that the device fills from a host source (default /dev/urandom). Each
// chain is filled with at most kMaxBytesPerChain bytes, so a guest cannot make the
// host read gigabytes in one request.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "devices/virtio/virtio_device.h"

namespace vmm::devices::virtio {

class RngDevice final : public VirtioDevice {
public:
    static constexpr uint16_t kQueueSize = 256;
    static constexpr uint32_t kMaxBytesPerChain = 64 * 1024;

    // Opens `source` (non-blocking: a source with no data yields short buffers
    // instead of stalling the event loop).
    [[nodiscard]] static Result<std::shared_ptr<RngDevice>> create(
        const std::string& source = "/dev/urandom");

    uint32_t device_type() const override { return kIdRng; }
    std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
    uint64_t device_features() const override {
        return kFeatureVersion1 | kFeatureIndirectDesc | kFeatureEventIdx;
    }
    // No configuration space (§5.4.4).
    void read_config(uint64_t offset, std::span<std::byte> data) const override;
    void write_config(uint64_t offset, std::span<const std::byte> data) override;
    [[nodiscard]] Result<void> activate(ActivateContext context) override;
    void reset() override;
    void process_queue(uint16_t index) override;
    std::map<std::string, uint64_t> counters() const override;

private:
    struct Active {
        const memory::GuestMemory* memory;
        Queue queue;
        std::shared_ptr<VirtioInterrupt> interrupt;
    };

    RngDevice(std::string source, UniqueFd fd) : m_source(std::move(source)), m_fd(std::move(fd)) {}
    // Fills the chain's writable buffers; returns the bytes written.
    uint32_t fill_chain(const memory::GuestMemory& mem, const DescriptorChain& chain);
    // Reads up to `len` bytes from the source into guest memory at addr.
    uint32_t fill_buffer(const memory::GuestMemory& mem, memory::GuestAddress addr, uint32_t len);

    mutable std::mutex m_mutex;
    const std::string m_source;
    UniqueFd m_fd;
    std::optional<Active> m_active;
    bool m_broken = false;  // DEVICE_NEEDS_RESET was raised; wait for reset()
    uint64_t m_bytes = 0;
    uint64_t m_requests = 0;
    log::RateLimiter m_log_limiter;
};

}  // namespace vmm::devices::virtio
