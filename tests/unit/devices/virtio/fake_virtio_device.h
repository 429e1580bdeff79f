// A VirtioDevice that records what its transport calls, for transport tests.
#pragma once

#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "devices/virtio/virtio_device.h"

namespace vmm::devices::virtio::test {

class FakeVirtioDevice final : public VirtioDevice {
public:
    struct ConfigWrite {
        uint64_t offset = 0;
        std::vector<std::byte> data;
    };

    // What the device offers; set before constructing the transport.
    uint32_t type = kIdRng;
    std::vector<uint16_t> max_sizes{256, 64};
    uint64_t features = kFeatureVersion1 | kFeatureEventIdx | kFeatureIndirectDesc | 0x5;
    std::vector<std::byte> config;               // read_config serves these bytes
    std::optional<std::string> activate_error;   // activate() fails with it when set

    // What the transport did.
    int activate_calls = 0;
    int reset_calls = 0;
    std::optional<ActivateContext> last_context;
    std::vector<ConfigWrite> config_writes;

    uint32_t device_type() const override { return type; }
    std::vector<uint16_t> queue_max_sizes() const override { return max_sizes; }
    uint64_t device_features() const override { return features; }

    void read_config(uint64_t offset, std::span<std::byte> data) const override {
        for (size_t i = 0; i < data.size(); ++i) {
            data[i] = offset + i < config.size() ? config[offset + i] : std::byte{0};
        }
    }
    void write_config(uint64_t offset, std::span<const std::byte> data) override {
        config_writes.push_back({offset, {data.begin(), data.end()}});
    }

    Result<void> activate(ActivateContext context) override {
        ++activate_calls;
        if (activate_error) return Error(*activate_error);
        last_context = std::move(context);
        return ok();
    }
    void reset() override {
        ++reset_calls;
        last_context.reset();
    }
    void process_queue(uint16_t index) override {
        std::lock_guard lock(m_mutex);
        m_processed.push_back(index);
    }

    std::vector<uint16_t> processed() const {
        std::lock_guard lock(m_mutex);
        return m_processed;
    }
    // The interrupt handed over at the last successful activation.
    std::shared_ptr<VirtioInterrupt> interrupt() const {
        return last_context ? last_context->interrupt : nullptr;
    }

private:
    mutable std::mutex m_mutex;
    std::vector<uint16_t> m_processed;
};

}  // namespace vmm::devices::virtio::test
