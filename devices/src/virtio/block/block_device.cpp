#include "devices/virtio/activation.h"
#include "devices/virtio/queue_drain.h"
#include "devices/virtio/block/block_device.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace vmm::devices::virtio {

namespace {

// Copies the part of `config` at [offset, offset+out.size()) into out; zeros past
// its end (overflow-safe for any guest offset).
void copy_config(std::span<const std::byte> config, uint64_t offset, std::span<std::byte> out) {
    std::fill(out.begin(), out.end(), std::byte{0});
    if (offset >= config.size()) return;
    size_t n = std::min<uint64_t>(out.size(), config.size() - offset);
    std::memcpy(out.data(), config.data() + offset, n);
}

}  // namespace

Result<std::shared_ptr<BlockDevice>> BlockDevice::create(const BlockOptions& options) {
    DiskFile disk = VMM_TRY_CTX(DiskFile::open(options.path, options.readonly, options.direct),
                                fmt::format("virtio-blk {}", options.id));
    log::info("virtio-blk {}: {} ({} sectors{}{})", options.id, options.path,
              disk.capacity_sectors(), options.readonly ? ", read-only" : "",
              options.direct ? ", O_DIRECT" : "");
    return std::shared_ptr<BlockDevice>(new BlockDevice(options, std::move(disk)));
}

BlockDevice::BlockDevice(BlockOptions options, DiskFile disk)
    : m_options(std::move(options)), m_disk(std::move(disk)) {}

uint64_t BlockDevice::device_features() const {
    uint64_t features = kFeatureVersion1 | kFeatureIndirectDesc | kFeatureEventIdx |
                        kFeatureSegMax | kFeatureBlkSize | kFeatureFlush;
    if (m_options.readonly) features |= kFeatureReadOnly;
    return features;
}

void BlockDevice::read_config(uint64_t offset, std::span<std::byte> data) const {
    // Nothing here changes after creation, so no lock is needed.
    std::array<std::byte, kConfigSize> config{};
    uint64_t capacity = m_disk.capacity_sectors();
    uint32_t seg_max = kSegMax;
    uint32_t blk_size = kSectorSize;
    std::memcpy(config.data() + kConfigCapacity, &capacity, sizeof(capacity));
    std::memcpy(config.data() + kConfigSegMax, &seg_max, sizeof(seg_max));
    std::memcpy(config.data() + kConfigBlkSize, &blk_size, sizeof(blk_size));
    copy_config(config, offset, data);
}

void BlockDevice::write_config(uint64_t offset, std::span<const std::byte> data) {
    // Only `writeback` is writable, and only with VIRTIO_BLK_F_CONFIG_WCE (not offered).
    if (m_log_limiter.allow()) {
        log::warn("virtio-blk {}: ignoring {}-byte config write at {:#x}", m_options.id,
                  data.size(), offset);
    }
}

Result<void> BlockDevice::activate(ActivateContext context) {
    VMM_TRY(prepare_activation(context, "virtio-blk", 1, 1));
    Queue& queue = context.queues[0];

    std::lock_guard lock(m_mutex);
    m_active.emplace(Active{context.memory, std::move(queue), std::move(context.interrupt)});
    m_broken = false;
    return ok();
}

void BlockDevice::reset() {
    std::lock_guard lock(m_mutex);
    m_active.reset();
    m_broken = false;
}

void BlockDevice::process_queue(uint16_t index) {
    std::shared_ptr<VirtioInterrupt> interrupt;
    bool notify = false;
    bool needs_reset = false;
    {
        std::lock_guard lock(m_mutex);
        if (!m_active || m_broken || index != 0) return;
        Active& a = *m_active;
        interrupt = a.interrupt;
        BlockRequestContext ctx{*a.memory, m_disk, m_options.id, m_stats, m_log_limiter};
        DrainOutcome out = drain_queue(
            a.queue, *a.memory, [&](const DescriptorChain& chain) { return execute_block_request(ctx, chain); },
            [&](const Error& e) {
                if (m_log_limiter.allow()) log::warn("virtio-blk {}: {}", m_options.id, e.message());
            });
        notify = out.notify;
        needs_reset = out.needs_reset;
        m_broken = needs_reset;
    }
    // Signalled without the device lock: the transport takes its own lock, and a
    // vCPU thread holding that one may be waiting for ours (activate/reset).
    if (notify) interrupt->signal_used_queue(index);
    if (needs_reset) interrupt->set_device_needs_reset();
}

std::map<std::string, uint64_t> BlockDevice::counters() const {
    std::lock_guard lock(m_mutex);
    return {{"read_bytes", m_stats.read_bytes}, {"write_bytes", m_stats.write_bytes},
            {"read_ops", m_stats.read_ops},     {"write_ops", m_stats.write_ops},
            {"flush_ops", m_stats.flush_ops},   {"errors", m_stats.errors}};
}

}  // namespace vmm::devices::virtio
