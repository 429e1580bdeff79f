// virtio-blk (virtio 1.2 §5.2) on a raw image file: one request queue, read/write,
// flush and get-id. The VMM translates its DiskConfig into BlockOptions (devices
// must not include vmm headers).
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
#include "devices/virtio/block/block_request.h"
#include "devices/virtio/block/disk_file.h"
#include "devices/virtio/virtio_device.h"

namespace vmm::devices::virtio {

struct BlockOptions {
    std::string path;
    bool readonly = false;
    bool direct = false;  // O_DIRECT
    std::string id;       // returned by GET_ID (at most 20 bytes are visible)
};

class BlockDevice final : public VirtioDevice {
public:
    static constexpr uint16_t kQueueSize = 256;
    // Data segments per request: the two others carry header and status (Linux
    // sizes its scatterlists from this).
    static constexpr uint32_t kSegMax = kQueueSize - 2;

    static constexpr uint64_t kFeatureSegMax = 1ull << 2;    // VIRTIO_BLK_F_SEG_MAX
    static constexpr uint64_t kFeatureReadOnly = 1ull << 5;  // VIRTIO_BLK_F_RO
    static constexpr uint64_t kFeatureBlkSize = 1ull << 6;   // VIRTIO_BLK_F_BLK_SIZE
    static constexpr uint64_t kFeatureFlush = 1ull << 9;     // VIRTIO_BLK_F_FLUSH

    // struct virtio_blk_config offsets (only the fields we fill in).
    static constexpr uint64_t kConfigCapacity = 0;   // le64, in 512-byte sectors
    static constexpr uint64_t kConfigSegMax = 12;    // le32
    static constexpr uint64_t kConfigBlkSize = 20;   // le32
    static constexpr uint64_t kConfigSize = 24;

    [[nodiscard]] static Result<std::shared_ptr<BlockDevice>> create(const BlockOptions& options);

    uint32_t device_type() const override { return kIdBlock; }
    std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
    uint64_t device_features() const override;
    void read_config(uint64_t offset, std::span<std::byte> data) const override;
    void write_config(uint64_t offset, std::span<const std::byte> data) override;
    [[nodiscard]] Result<void> activate(ActivateContext context) override;
    void reset() override;
    void process_queue(uint16_t index) override;
    std::map<std::string, uint64_t> counters() const override;

    uint64_t capacity_sectors() const { return m_disk.capacity_sectors(); }
    const std::string& id() const { return m_options.id; }

private:
    struct Active {
        const memory::GuestMemory* memory;
        Queue queue;
        std::shared_ptr<VirtioInterrupt> interrupt;
    };

    BlockDevice(BlockOptions options, DiskFile disk);

    mutable std::mutex m_mutex;
    const BlockOptions m_options;
    DiskFile m_disk;
    std::optional<Active> m_active;
    bool m_broken = false;  // DEVICE_NEEDS_RESET was raised; wait for reset()
    BlockStats m_stats;
    log::RateLimiter m_log_limiter;
};

}  // namespace vmm::devices::virtio
