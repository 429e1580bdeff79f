#include "vmm/virtio_mmio_devices.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include "common/log.h"
#include "irq_line.h"
#include "memory/x86_64_layout.h"
#include "vmm/seccomp.h"

namespace vmm {

namespace dv = devices::virtio;

namespace {

const char* path_name(dv::NotifyPath path) {
    switch (path) {
        case dv::NotifyPath::event_loop: return "event loop";
        case dv::NotifyPath::vcpu_thread: return "vCPU thread";
        case dv::NotifyPath::worker_thread: return "worker thread";
    }
    return "?";
}

// "queues 0-1: event loop, 2-5: vCPU thread" (runs of equal paths).
std::string describe_paths(const std::vector<dv::NotifyPath>& paths) {
    std::string out;
    for (size_t first = 0; first < paths.size();) {
        size_t last = first;
        while (last + 1 < paths.size() && paths[last + 1] == paths[first]) ++last;
        if (!out.empty()) out += ", ";
        out += first == last ? fmt::format("{}", first) : fmt::format("{}-{}", first, last);
        out += fmt::format(": {}", path_name(paths[first]));
        first = last + 1;
    }
    return out.empty() ? "no queues" : "queues " + out;
}

}  // namespace

// A device's own thread with its own epoll loop, for queues whose handling must not
// wait behind (or hold up) the VMM thread. Every fd is added before the thread starts,
// so the loop is only ever touched by that thread; the destructor stops and joins it.
// The thread installs its seccomp filter before it serves anything, and start()
// waits for that: a worker without its filter never runs a queue.
class VirtioMmioDevices::Worker {
public:
    static Result<std::unique_ptr<Worker>> create() {
        auto loop = VMM_TRY(EventLoop::create());
        auto stop = VMM_TRY(EventFd::create());
        return std::unique_ptr<Worker>(new Worker(std::move(loop), std::move(stop)));
    }
    ~Worker() {
        if (!m_thread.joinable()) return;
        if (auto r = m_stop.signal(); !r) log::error("stopping a virtio worker: {}", r.error().message());
        m_thread.join();
    }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    EventLoop& loop() { return m_loop; }

    [[nodiscard]] Result<void> start(const std::string& id, SeccompMode seccomp) {
        VMM_TRY(m_loop.add(m_stop.fd(), EPOLLIN, [this](uint32_t) { m_stopping = true; }));
        std::promise<Result<void>> filtered;
        auto installed = filtered.get_future();
        // Shows up in top/ps and in seccomp audit records; at most 15 characters.
        std::string name = fmt::format("virtio-{}", id).substr(0, 15);
        // The thread owns the promise, so the shared state outlives set_value().
        m_thread = std::thread([this, name, seccomp, filtered = std::move(filtered)]() mutable {
            // Named by the thread itself, before its filter (which allows no file opens).
            (void)::pthread_setname_np(::pthread_self(), name.c_str());
            auto r = apply_seccomp(ThreadKind::device_worker, seccomp);
            bool installed_ok = r.has_value();
            filtered.set_value(std::move(r));
            if (installed_ok) run();
        });
        if (auto r = installed.get(); !r) {
            m_thread.join();
            return r.error();
        }
        return ok();
    }

private:
    Worker(EventLoop loop, EventFd stop) : m_loop(std::move(loop)), m_stop(std::move(stop)) {}

    void run() {
        while (!m_stopping) {
            if (auto r = m_loop.run_once(-1); !r) {
                // epoll_wait only fails on a broken epoll fd: retrying would spin.
                log::error("virtio worker loop failed, its queues are no longer served: {}", r.error().message());
                return;
            }
        }
    }

    EventLoop m_loop;
    EventFd m_stop;
    bool m_stopping = false;  // only the worker thread reads and writes it
    std::thread m_thread;
};

// What keeps a slot's interrupts and notifications alive; removed from the loop on
// destruction. The worker (last member) is joined before the eventfds it watches close.
struct VirtioMmioDevices::Wiring {
    EventLoop* loop = nullptr;
    std::shared_ptr<IrqFdLine> irq;
    std::vector<EventFd> queue_events;
    std::vector<kvm::IoEventFd> ioevents;
    std::vector<int> watched_fds;  // on the VMM loop
    std::unique_ptr<Worker> worker;

    ~Wiring() {
        worker.reset();
        for (int fd : watched_fds) (void)loop->remove(fd);
    }
};

VirtioMmioDevices::VirtioMmioDevices(const kvm::VmFd& vm, const memory::GuestMemory& memory, devices::Bus& mmio_bus,
                                     EventLoop& loop, SeccompMode seccomp)
    : m_vm(vm), m_memory(memory), m_bus(mmio_bus), m_loop(loop), m_seccomp(seccomp) {}

VirtioMmioDevices::~VirtioMmioDevices() = default;

Result<void> VirtioMmioDevices::add(std::shared_ptr<dv::VirtioDevice> device, std::string id) {
    size_t index = m_slots.size();
    if (index >= kGsis.size()) {
        return Error::msg("too many virtio devices: at most {} are supported", kGsis.size());
    }
    uint64_t base = memory::x86_64::kVirtioMmioBase + index * dv::kMmioSlotSize;
    uint32_t gsi = kGsis[index];

    auto wiring = std::make_unique<Wiring>();
    wiring->loop = &m_loop;
    wiring->irq = VMM_TRY(IrqFdLine::create(m_vm, gsi));
    auto transport = std::make_shared<dv::MmioTransport>(device, m_memory, wiring->irq);
    VMM_TRY_CTX(m_bus.insert(transport, base, dv::kMmioSlotSize), id);

    uint16_t queues = static_cast<uint16_t>(device->queue_max_sizes().size());
    std::vector<dv::NotifyPath> paths;
    for (uint16_t q = 0; q < queues; ++q) {
        dv::NotifyPath path = device->notify_path(q);
        paths.push_back(path);
        // vcpu_thread: no ioeventfd, so the QueueNotify write exits to the vCPU, whose
        // MmioTransport::write calls notify_queue outside the transport's lock.
        if (path == dv::NotifyPath::vcpu_thread) continue;
        EventFd event = VMM_TRY(EventFd::create());
        wiring->ioevents.push_back(
            VMM_TRY(m_vm.register_ioeventfd(event, base + dv::kMmioQueueNotifyOffset, 4, q, false)));
        int fd = event.fd();
        auto handler = [fd, q, transport](uint32_t) {
            uint64_t value = 0;
            // Clear the eventfd before processing so a notification that arrives
            // while we work is not lost.
            (void)::read(fd, &value, sizeof(value));
            transport->notify_queue(q);
        };
        if (path == dv::NotifyPath::worker_thread) {
            if (!wiring->worker) wiring->worker = VMM_TRY(Worker::create());
            VMM_TRY(wiring->worker->loop().add(fd, EPOLLIN, handler));
        } else {
            VMM_TRY(m_loop.add(fd, EPOLLIN, handler));
            wiring->watched_fds.push_back(fd);
        }
        wiring->queue_events.push_back(std::move(event));
    }
    for (int fd : device->backend_fds()) {
        VMM_TRY(m_loop.add(fd, EPOLLIN | EPOLLET, [fd, device](uint32_t events) { device->process_backend(fd, events); }));
        wiring->watched_fds.push_back(fd);
    }
    if (wiring->worker) VMM_TRY_CTX(wiring->worker->start(id, m_seccomp), fmt::format("virtio device '{}'", id));
    log::info("virtio device '{}' (type {}) at {:#x}, IRQ {}, {} queues ({})", id, device->device_type(), base, gsi,
              queues, describe_paths(paths));
    m_slots.push_back({std::move(id), base, gsi, std::move(transport)});
    m_wiring.push_back(std::move(wiring));
    return ok();
}

std::string VirtioMmioDevices::cmdline_fragment() const {
    std::string out;
    for (const auto& slot : m_slots) out += fmt::format(" virtio_mmio.device=4K@{:#x}:{}", slot.base, slot.gsi);
    return out;
}

}  // namespace vmm
