// The VMM thread: starts the vCPUs, serves stdin to the serial port, and waits
// for the exit request.
#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <deque>

#include "common/log.h"
#include "devices/legacy/debug_port.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "irq_line.h"
#include "legacy_devices.h"
#include "devices/virtio/console/console_device.h"
#include "vmm/vm.h"

namespace vmm {

namespace {
// Input the UART could not take yet (its FIFO is 64 bytes); retried every tick.
constexpr int kInputRetryMs = 5;
}  // namespace

Result<void> Vm::watch_stdin(EventLoop& loop) {
    // stdin is the keyboard of the console on the terminal: the serial port, or
    // else the virtio console. EOF (e.g. /dev/null) simply stops watching.
    if (m_legacy->serial && m_config.serial.mode == ConsoleMode::tty) {
        auto serial = m_legacy->serial;
        m_input_target = [serial](std::span<const std::byte> b) { return serial->enqueue_input(b); };
    } else if (m_virtio_console && m_config.console.mode == ConsoleMode::tty) {
        auto console = m_virtio_console;
        m_input_target = [console](std::span<const std::byte> b) { return console->enqueue_input(b); };
    } else {
        return ok();
    }
    auto added = loop.add(STDIN_FILENO, EPOLLIN, [this, &loop](uint32_t) {
        std::array<std::byte, 64> buf{};
        ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
        if (n <= 0) {
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
            (void)loop.remove(STDIN_FILENO);
            return;
        }
        m_pending_input.insert(m_pending_input.end(), buf.begin(), buf.begin() + n);
        flush_pending_input();
        // Stop reading while the guest is behind, so input is never dropped.
        if (!m_pending_input.empty()) (void)loop.modify(STDIN_FILENO, 0);
    });
    // A regular file or /dev/null cannot be polled (EPERM): there is no input then.
    if (!added && added.error().errno_value() == EPERM) {
        log::debug("stdin cannot be polled; the serial console has no input");
        return ok();
    }
    return added;
}

void Vm::flush_pending_input() {
    if (m_pending_input.empty() || !m_input_target) return;
    size_t taken = m_input_target(m_pending_input);
    m_pending_input.erase(m_pending_input.begin(), m_pending_input.begin() + static_cast<ptrdiff_t>(taken));
}

Result<VmExitRequest> Vm::run() {
    EventLoop& loop = *m_loop;
    bool exit_signalled = false;
    VMM_TRY(loop.add(m_exits->event().fd(), EPOLLIN, [this, &exit_signalled](uint32_t) {
        (void)m_exits->event().consume();
        exit_signalled = true;
    }));
    VMM_TRY(watch_stdin(loop));
    if (m_requests) {
        VMM_TRY(loop.add(m_requests->fd(), EPOLLIN, [this](uint32_t) {
            m_requests->drain([this](const VmRequest& r) { return handle_request(r); });
        }));
    }

    for (auto& vcpu : m_vcpus) vcpu->start();
    while (!exit_signalled) {
        bool backlog = !m_pending_input.empty();
        VMM_TRY(loop.run_once(backlog ? kInputRetryMs : -1));
        if (backlog) {
            flush_pending_input();
            if (m_pending_input.empty()) (void)loop.modify(STDIN_FILENO, EPOLLIN);
        }
    }
    for (auto& vcpu : m_vcpus) vcpu->stop();
    (void)loop.remove(m_exits->event().fd());
    if (m_requests) (void)loop.remove(m_requests->fd());
    if (m_input_target) (void)loop.remove(STDIN_FILENO);
    auto request = m_exits->requested();
    if (!request) return Error::msg("VMM woke up without an exit request");
    return *request;
}

void Vm::pause() {
    for (auto& vcpu : m_vcpus) vcpu->pause();
}

void Vm::resume() {
    for (auto& vcpu : m_vcpus) vcpu->resume();
}

std::vector<Vcpu::State> Vm::vcpu_states() const {
    std::vector<Vcpu::State> states;
    for (const auto& vcpu : m_vcpus) states.push_back(vcpu->state());
    return states;
}

}  // namespace vmm
