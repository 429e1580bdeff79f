#include "devices/virtio/activation.h"
#include "devices/virtio/console/console_device.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace vmm::devices::virtio {

void ConsoleDevice::read_config(uint64_t offset, std::span<std::byte> data) const {
    std::array<std::byte, kConfigSize> config{};
    uint32_t max_nr_ports = 1;
    std::memcpy(config.data() + kConfigMaxNrPorts, &max_nr_ports, sizeof(max_nr_ports));
    std::fill(data.begin(), data.end(), std::byte{0});
    if (offset >= config.size()) return;
    size_t n = std::min<uint64_t>(data.size(), config.size() - offset);
    std::memcpy(data.data(), config.data() + offset, n);
}

void ConsoleDevice::write_config(uint64_t offset, std::span<const std::byte> data) {
    // emerg_wr is writable only with VIRTIO_CONSOLE_F_EMERG_WRITE (not offered).
    if (m_log_limiter.allow()) {
        log::warn("virtio-console: ignoring {}-byte config write at {:#x}", data.size(), offset);
    }
}

Result<void> ConsoleDevice::activate(ActivateContext context) {
    VMM_TRY(prepare_activation(context, "virtio-console", 2, 2));
    std::lock_guard lock(m_mutex);
    m_active.emplace(
        Active{context.memory, std::move(context.queues), std::move(context.interrupt)});
    m_broken = false;
    return ok();
}

void ConsoleDevice::reset() {
    // Buffered host input is kept: it was typed for whichever driver comes next.
    std::lock_guard lock(m_mutex);
    m_active.reset();
    m_broken = false;
}

size_t ConsoleDevice::enqueue_input(std::span<const std::byte> bytes) {
    Effects effects;
    size_t accepted = 0;
    {
        std::lock_guard lock(m_mutex);
        accepted = std::min(bytes.size(), kInputCapacity - m_input.size());
        m_input.insert(m_input.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(accepted));
        if (usable()) deliver_input(effects);
    }
    apply(effects);
    return accepted;
}

size_t ConsoleDevice::input_space() const {
    std::lock_guard lock(m_mutex);
    return kInputCapacity - m_input.size();
}

void ConsoleDevice::process_queue(uint16_t index) {
    Effects effects;
    {
        std::lock_guard lock(m_mutex);
        if (!usable()) return;
        if (index == kReceiveQueue) deliver_input(effects);
        if (index == kTransmitQueue) transmit(effects);
    }
    apply(effects);
}

void ConsoleDevice::apply(const Effects& effects) {
    // Outside the lock: the transport's lock is taken before ours on vCPU threads.
    if (!effects.interrupt) return;
    if (effects.notify_rx) effects.interrupt->signal_used_queue(kReceiveQueue);
    if (effects.notify_tx) effects.interrupt->signal_used_queue(kTransmitQueue);
    if (effects.needs_reset) effects.interrupt->set_device_needs_reset();
}

bool ConsoleDevice::should_notify(uint16_t index, Effects& effects) {
    auto wanted = m_active->queues[index].needs_notification(*m_active->memory);
    if (!wanted) {
        effects.needs_reset = true;
        return false;
    }
    return *wanted;
}

void ConsoleDevice::deliver_input(Effects& effects) {
    Active& a = *m_active;
    Queue& queue = a.queues[kReceiveQueue];
    effects.interrupt = a.interrupt;
    bool added = false;
    while (!m_input.empty() && !effects.needs_reset) {
        auto chain = queue.pop(*a.memory);
        if (!chain) {
            if (m_log_limiter.allow()) log::warn("virtio-console rx: {}", chain.error().message());
            effects.needs_reset = true;
            break;
        }
        if (!chain->has_value()) break;  // no buffers posted: keep the input
        uint32_t used = fill_receive_chain(*a.memory, **chain);
        effects.needs_reset = !queue.add_used(*a.memory, (*chain)->head(), used);
        added = added || !effects.needs_reset;
    }
    if (added && !effects.needs_reset) effects.notify_rx = should_notify(kReceiveQueue, effects);
    m_broken = m_broken || effects.needs_reset;
}

uint32_t ConsoleDevice::fill_receive_chain(const memory::GuestMemory& mem,
                                           const DescriptorChain& chain) {
    uint32_t total = 0;
    std::array<std::byte, kInputCapacity> buf;
    for (const Descriptor& d : chain.descriptors()) {
        if (m_input.empty()) break;
        if (!d.device_writable) continue;
        size_t n = std::min<size_t>(d.len, m_input.size());
        std::copy_n(m_input.begin(), n, buf.begin());
        if (!mem.write(d.addr, std::span(buf).first(n))) break;  // validated by pop
        m_input.erase(m_input.begin(), m_input.begin() + static_cast<ptrdiff_t>(n));
        total += static_cast<uint32_t>(n);
    }
    m_rx_bytes += total;
    return total;
}

void ConsoleDevice::transmit(Effects& effects) {
    Active& a = *m_active;
    Queue& queue = a.queues[kTransmitQueue];
    effects.interrupt = a.interrupt;
    bool added = false;
    while (!effects.needs_reset) {
        auto chain = queue.pop(*a.memory);
        if (!chain) {
            if (m_log_limiter.allow()) log::warn("virtio-console tx: {}", chain.error().message());
            effects.needs_reset = true;
            break;
        }
        if (!chain->has_value()) break;
        m_tx_bytes += transmit_chain(*a.memory, **chain);
        // The device wrote nothing into a transmit buffer: used length 0.
        effects.needs_reset = !queue.add_used(*a.memory, (*chain)->head(), 0);
        added = added || !effects.needs_reset;
    }
    if (added && !effects.needs_reset) effects.notify_tx = should_notify(kTransmitQueue, effects);
    m_broken = m_broken || effects.needs_reset;
}

uint64_t ConsoleDevice::transmit_chain(const memory::GuestMemory& mem,
                                       const DescriptorChain& chain) {
    // Copied out in bounded chunks so a huge chain never grows host memory. The sink
    // runs under the device lock; it must not call back into this device.
    std::array<std::byte, 4096> buf;
    uint64_t sent = 0;
    for (const Descriptor& d : chain.descriptors()) {
        if (d.device_writable) continue;
        for (uint32_t off = 0; off < d.len;) {
            size_t n = std::min<size_t>(buf.size(), d.len - off);
            auto chunk = std::span(buf).first(n);
            if (!mem.read(d.addr.unchecked_add(off), chunk)) break;  // validated by pop
            if (m_output) m_output(chunk);
            off += static_cast<uint32_t>(n);
            sent += n;
        }
    }
    return sent;
}

std::map<std::string, uint64_t> ConsoleDevice::counters() const {
    std::lock_guard lock(m_mutex);
    return {{"tx_bytes", m_tx_bytes}, {"rx_bytes", m_rx_bytes}};
}

}  // namespace vmm::devices::virtio
