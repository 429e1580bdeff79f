#include "devices/virtio/net/net_device.h"

#include <algorithm>
#include <climits>
#include <cstring>

namespace vmm::devices::virtio::net {

namespace {

// Offset of num_buffers in virtio_net_hdr_mrg_rxbuf.
constexpr uint64_t kNumBuffersOffset = 10;
constexpr size_t kConfigSize = 8;  // mac[6], le16 status

// Copies `data` into the device-writable buffers of `chain`, starting `offset`
// bytes into them. The caller has checked that it fits.
Result<void> write_to_chain(const memory::GuestMemory& mem, const DescriptorChain& chain,
                            uint64_t offset, std::span<const std::byte> data) {
    for (const Descriptor& d : chain.descriptors()) {
        if (data.empty()) break;
        if (!d.device_writable) continue;
        if (offset >= d.len) {
            offset -= d.len;
            continue;
        }
        size_t n = std::min<uint64_t>(data.size(), d.len - offset);
        VMM_TRY(mem.write(d.addr.unchecked_add(offset), data.first(n)));
        data = data.subspan(n);
        offset = 0;
    }
    return ok();
}

}  // namespace

Result<std::shared_ptr<NetDevice>> NetDevice::create(const NetOptions& options) {
    Tap tap = VMM_TRY_CTX(Tap::open(options.tap), fmt::format("net '{}'", options.id));
    VMM_TRY_CTX(tap.configure(options.ip, options.mask), fmt::format("net '{}'", options.id));
    MacAddress mac = options.mac;
    if (mac == MacAddress{}) mac = random_mac();  // all-zero is not a usable address
    log::info("net '{}': tap '{}', guest MAC {}", options.id, tap.name(), format_mac(mac));
    return std::make_shared<NetDevice>(std::make_unique<Tap>(std::move(tap)), mac, options.id);
}

NetDevice::NetDevice(std::unique_ptr<NetBackend> backend, const MacAddress& mac, std::string id)
    : m_backend(std::move(backend)), m_mac(mac), m_id(std::move(id)),
      m_tx_buffer(kMaxBufferSize), m_rx_spill(kMaxBufferSize + 1) {}

uint64_t NetDevice::device_features() const {
    return kFeatureVersion1 | kFeatureIndirectDesc | kFeatureEventIdx | kNetFeatureMac |
           kNetFeatureStatus;
}

void NetDevice::read_config(uint64_t offset, std::span<std::byte> data) const {
    std::array<std::byte, kConfigSize> config{};
    std::memcpy(config.data(), m_mac.data(), m_mac.size());
    uint16_t status = kNetStatusLinkUp;  // little-endian host
    std::memcpy(config.data() + 6, &status, sizeof(status));
    std::fill(data.begin(), data.end(), std::byte{0});
    if (offset >= config.size()) return;
    size_t n = std::min<uint64_t>(data.size(), config.size() - offset);
    std::memcpy(data.data(), config.data() + offset, n);
}

void NetDevice::write_config(uint64_t offset, std::span<const std::byte> data) {
    // Modern drivers never write the MAC (that needs the control queue); ignore.
    if (m_log_limit.allow()) {
        log::debug("net '{}': ignored {}-byte config write at {:#x}", m_id, data.size(), offset);
    }
}

Result<void> NetDevice::activate(ActivateContext context) {
    if (context.queues.size() != 2) {
        return Error::msg("net '{}': expected 2 queues, got {}", m_id, context.queues.size());
    }
    if (context.memory == nullptr || !context.interrupt) {
        return Error::msg("net '{}': activation without memory or interrupt", m_id);
    }
    std::lock_guard lock(m_mutex);
    for (Queue& q : context.queues) {
        q.set_event_idx((context.acked_features & kFeatureEventIdx) != 0);
        q.set_indirect_allowed((context.acked_features & kFeatureIndirectDesc) != 0);
    }
    m_mem = context.memory;
    m_queues = std::move(context.queues);
    m_interrupt = std::move(context.interrupt);
    m_used_added = {};
    m_broken = false;
    m_active = true;
    process_rx();  // frames may have queued up in the tap before the driver was ready
    return ok();
}

void NetDevice::reset() {
    std::lock_guard lock(m_mutex);
    m_active = false;
    m_broken = false;
    m_queues.clear();
    m_mem = nullptr;
    m_interrupt.reset();
}

void NetDevice::process_queue(uint16_t index) {
    std::lock_guard lock(m_mutex);
    if (!m_active || m_broken) return;
    if (index == kRxQueue) process_rx();
    if (index == kTxQueue) process_tx();
}

std::vector<int> NetDevice::backend_fds() const { return {m_backend->fd()}; }

void NetDevice::process_backend(int fd, uint32_t events) {
    if (fd != m_backend->fd()) return;
    if ((events & (EPOLLERR | EPOLLHUP)) != 0 && m_log_limit.allow()) {
        log::warn("net '{}': backend fd reported error/hang-up ({:#x})", m_id, events);
    }
    std::lock_guard lock(m_mutex);
    if (!m_active || m_broken) return;  // frames wait in the tap until the driver is ready
    if ((events & EPOLLIN) != 0) process_rx();
}

std::map<std::string, uint64_t> NetDevice::counters() const {
    return {{"rx_bytes", m_rx_bytes.load()},     {"rx_frames", m_rx_frames.load()},
            {"rx_dropped", m_rx_dropped.load()}, {"tx_bytes", m_tx_bytes.load()},
            {"tx_frames", m_tx_frames.load()},   {"tx_dropped", m_tx_dropped.load()}};
}

void NetDevice::process_rx() {
    // Each round consumes a guest buffer or a backend frame, so this ends when
    // either side runs dry.
    while (!m_broken && receive_one()) {
    }
    notify_if_needed(kRxQueue);
}

void NetDevice::process_tx() {
    while (!m_broken && transmit_one()) {
    }
    notify_if_needed(kTxQueue);
}

bool NetDevice::receive_one() {
    Queue& queue = m_queues[kRxQueue];
    auto popped = queue.pop(*m_mem);
    if (!popped) {
        fail(popped.error());
        return false;
    }
    if (!*popped) return false;  // no guest buffer: the frame stays in the backend
    const DescriptorChain& chain = **popped;

    if (chain.readable_bytes() != 0 || chain.writable_bytes() < kVnetHdrSize) {
        if (m_log_limit.allow()) {
            log::warn("net '{}': rx chain {} has read-only or too little space ({} bytes)",
                      m_id, chain.head(), chain.writable_bytes());
        }
        complete(kRxQueue, chain.head(), 0);
        return true;
    }

    // Read straight into the guest's buffers when each is one host mapping; the
    // spill buffer behind them catches the rest of a frame too long for the chain,
    // so its real length is known and it can be dropped.
    std::vector<iovec> iov;
    iov.reserve(chain.descriptors().size() + 1);
    bool direct = chain.descriptors().size() < IOV_MAX;
    for (const Descriptor& d : chain.descriptors()) {
        if (!direct) break;
        if (d.len == 0) continue;
        auto slice = m_mem->slice(d.addr, d.len);
        if (!slice) direct = false;  // spans two regions: copy through the spill buffer
        else iov.push_back(slice->as_iovec());
    }
    if (!direct) iov.clear();
    iov.push_back({m_rx_spill.data(), m_rx_spill.size()});

    auto got = m_backend->read(iov);
    if (!got || !*got) {
        if (!got && m_log_limit.allow()) log::warn("net '{}': {}", m_id, got.error().message());
        queue.undo_pop();
        return false;
    }
    size_t len = **got;
    uint64_t capacity = std::min<uint64_t>(chain.writable_bytes(), kMaxBufferSize);
    if (len > capacity || len < kVnetHdrSize) {
        ++m_rx_dropped;  // the guest's buffer is reused for the next frame
        queue.undo_pop();
        return true;
    }
    if (!direct) {
        auto copied = write_to_chain(*m_mem, chain, 0, std::span(m_rx_spill).first(len));
        if (!copied) {
            fail(copied.error());
            return false;
        }
    }
    // The tap fills only the first 10 header bytes; without MRG_RXBUF a frame is
    // always one buffer (virtio 1.2 §5.1.6.4).
    uint16_t num_buffers = 1;
    auto hdr = write_to_chain(*m_mem, chain, kNumBuffersOffset,
                              std::as_bytes(std::span(&num_buffers, 1)));
    if (!hdr) {
        fail(hdr.error());
        return false;
    }
    ++m_rx_frames;
    m_rx_bytes += len - kVnetHdrSize;
    complete(kRxQueue, chain.head(), static_cast<uint32_t>(len));
    return true;
}

bool NetDevice::transmit_one() {
    auto popped = m_queues[kTxQueue].pop(*m_mem);
    if (!popped) {
        fail(popped.error());
        return false;
    }
    if (!*popped) return false;
    const DescriptorChain& chain = **popped;

    uint64_t total = chain.readable_bytes();
    if (total < kVnetHdrSize || total > kMaxBufferSize) {
        ++m_tx_dropped;
        if (m_log_limit.allow()) {
            log::warn("net '{}': dropped tx chain {} of {} bytes (frame must be {}..{} bytes "
                      "with its header)", m_id, chain.head(), total, kVnetHdrSize, kMaxBufferSize);
        }
        complete(kTxQueue, chain.head(), 0);
        return true;
    }
    // Gather into host memory: the guest cannot change the frame while the tap reads
    // it, and the header can be sanitised without touching the guest's copy.
    size_t done = 0;
    for (const Descriptor& d : chain.descriptors()) {
        if (d.device_writable || d.len == 0) continue;
        auto r = m_mem->read(d.addr, std::span(m_tx_buffer).subspan(done, d.len));
        if (!r) {
            fail(r.error());
            return false;
        }
        done += d.len;
    }
    // No offloads were negotiated, so every header field must be zero.
    std::memset(m_tx_buffer.data(), 0, kVnetHdrSize);
    iovec iov{m_tx_buffer.data(), done};
    auto sent = m_backend->write(std::span(&iov, 1));
    if (!sent) {
        ++m_tx_dropped;
        if (m_log_limit.allow()) log::warn("net '{}': {}", m_id, sent.error().message());
    } else {
        ++m_tx_frames;
        m_tx_bytes += done - kVnetHdrSize;
    }
    complete(kTxQueue, chain.head(), 0);
    return true;
}

void NetDevice::fail(const Error& error) {
    m_broken = true;
    log::error("net '{}': {}; device needs reset", m_id, error.message());
    if (m_interrupt) m_interrupt->set_device_needs_reset();
}

void NetDevice::complete(uint16_t queue, uint16_t head, uint32_t len) {
    auto r = m_queues[queue].add_used(*m_mem, head, len);
    if (!r) {
        fail(r.error());
        return;
    }
    m_used_added[queue] = true;
}

void NetDevice::notify_if_needed(uint16_t queue) {
    if (m_broken || !m_used_added[queue]) return;
    m_used_added[queue] = false;
    auto needed = m_queues[queue].needs_notification(*m_mem);
    if (!needed) {
        fail(needed.error());
        return;
    }
    if (*needed) m_interrupt->signal_used_queue(queue);
}

}  // namespace vmm::devices::virtio::net
