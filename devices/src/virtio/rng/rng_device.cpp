#include "devices/virtio/activation.h"
#include "devices/virtio/queue_drain.h"
#include "devices/virtio/rng/rng_device.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace vmm::devices::virtio {

Result<std::shared_ptr<RngDevice>> RngDevice::create(const std::string& source) {
    UniqueFd fd(::open(source.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd) return Error::from_errno(fmt::format("virtio-rng: opening {}", source));
    return std::shared_ptr<RngDevice>(new RngDevice(source, std::move(fd)));
}

void RngDevice::read_config(uint64_t /*offset*/, std::span<std::byte> data) const {
    std::fill(data.begin(), data.end(), std::byte{0});
}

void RngDevice::write_config(uint64_t offset, std::span<const std::byte> data) {
    if (m_log_limiter.allow()) {
        log::warn("virtio-rng: ignoring {}-byte config write at {:#x}", data.size(), offset);
    }
}

Result<void> RngDevice::activate(ActivateContext context) {
    VMM_TRY(prepare_activation(context, "virtio-rng", 1, 1));
    Queue& queue = context.queues[0];

    std::lock_guard lock(m_mutex);
    m_active.emplace(Active{context.memory, std::move(queue), std::move(context.interrupt)});
    m_broken = false;
    return ok();
}

void RngDevice::reset() {
    std::lock_guard lock(m_mutex);
    m_active.reset();
    m_broken = false;
}

uint32_t RngDevice::fill_buffer(const memory::GuestMemory& mem, memory::GuestAddress addr,
                                uint32_t len) {
    // Through a small host buffer: guest RAM is only written via GuestMemory.
    std::array<std::byte, 4096> buf;
    uint32_t done = 0;
    while (done < len) {
        size_t want = std::min<size_t>(buf.size(), len - done);
        ssize_t n = ::read(m_fd.get(), buf.data(), want);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {  // EOF, EAGAIN or an error: hand over what we have
            if (n < 0 && errno != EAGAIN && m_log_limiter.allow()) {
                log::warn("virtio-rng: reading {}: {}", m_source, std::strerror(errno));
            }
            break;
        }
        auto got = static_cast<uint32_t>(n);
        if (!mem.write(addr.unchecked_add(done), std::span(buf).first(got))) break;
        done += got;
        if (got < want) break;
    }
    return done;
}

uint32_t RngDevice::fill_chain(const memory::GuestMemory& mem, const DescriptorChain& chain) {
    uint32_t total = 0;
    for (const Descriptor& d : chain.descriptors()) {
        if (!d.device_writable) continue;  // nothing to read from the driver
        uint32_t want = std::min(d.len, kMaxBytesPerChain - total);
        if (want == 0) break;
        uint32_t got = fill_buffer(mem, d.addr, want);
        total += got;
        if (got < want) break;  // the source ran dry; used len says how much is valid
    }
    return total;
}

void RngDevice::process_queue(uint16_t index) {
    std::shared_ptr<VirtioInterrupt> interrupt;
    bool notify = false;
    bool needs_reset = false;
    {
        std::lock_guard lock(m_mutex);
        if (!m_active || m_broken || index != 0) return;
        Active& a = *m_active;
        interrupt = a.interrupt;
        DrainOutcome out = drain_queue(
            a.queue, *a.memory,
            [&](const DescriptorChain& chain) {
                uint32_t used = fill_chain(*a.memory, chain);
                m_bytes += used;
                m_requests++;
                return used;
            },
            [&](const Error& e) {
                if (m_log_limiter.allow()) log::warn("virtio-rng: {}", e.message());
            });
        notify = out.notify;
        needs_reset = out.needs_reset;
        m_broken = needs_reset;
    }
    // Outside the lock: the transport's lock is taken before ours on vCPU threads.
    if (notify) interrupt->signal_used_queue(index);
    if (needs_reset) interrupt->set_device_needs_reset();
}

std::map<std::string, uint64_t> RngDevice::counters() const {
    std::lock_guard lock(m_mutex);
    return {{"bytes", m_bytes}, {"requests", m_requests}};
}

}  // namespace vmm::devices::virtio
