#include "vmm/vcpu.h"

#include <csignal>

#include "common/log.h"
#include "vmm/pvm_workarounds.h"
#include "vmm/seccomp.h"

namespace vmm {
namespace {

int kick_signal() { return SIGRTMIN; }

// Unhandled accesses are common (probes of absent ISA ports) and guest-driven:
// log them at debug level, rate-limited.
log::RateLimiter g_unhandled_limiter(20, std::chrono::seconds(10));

template <typename... Args>
void log_unhandled(fmt::format_string<Args...> f, Args&&... args) {
    if (log::level() >= log::Level::debug && g_unhandled_limiter.allow()) {
        log::debug(f, std::forward<Args>(args)...);
    }
}

std::string hex_bytes(std::span<const uint8_t> bytes) {
    std::string out;
    for (uint8_t b : bytes) out += fmt::format("{}{:02x}", out.empty() ? "" : " ", b);
    return out.empty() ? "unavailable" : out;
}

}  // namespace

void Vcpu::install_kick_handler() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction sa {};
        sa.sa_handler = [](int) {};  // only interrupts KVM_RUN
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
        sigaction(kick_signal(), &sa, nullptr);
    });
}

Vcpu::Vcpu(kvm::VcpuFd fd, VcpuContext context) : m_fd(std::move(fd)), m_ctx(context) {}

Vcpu::~Vcpu() { stop(); }

void Vcpu::start() {
    install_kick_handler();
    // Under the lock: pause()/stop() from other threads read m_thread.
    std::lock_guard lock(m_mutex);
    m_thread = std::thread([this] { thread_main(); });
    m_native = m_thread.native_handle();
}

void Vcpu::kick() {
    m_fd.set_immediate_exit(true);
    std::lock_guard lock(m_mutex);
    if (m_thread.joinable() && !m_thread_exited) pthread_kill(m_native, kick_signal());
}

void Vcpu::pause() {
    {
        std::lock_guard lock(m_mutex);
        if (m_requested == State::stopped) return;
        m_requested = State::paused;
    }
    kick();
    std::unique_lock lock(m_mutex);
    m_cv.wait(lock, [this] { return m_current == State::paused || m_thread_exited || !m_thread.joinable(); });
}

void Vcpu::resume() {
    std::unique_lock lock(m_mutex);
    if (m_requested != State::paused) return;
    m_requested = State::running;
    m_cv.notify_all();
    // Before start() there is no thread to acknowledge.
    m_cv.wait(lock, [this] { return m_current == State::running || m_thread_exited || !m_thread.joinable(); });
}

void Vcpu::stop() {
    {
        std::lock_guard lock(m_mutex);
        m_requested = State::stopped;
        m_cv.notify_all();
    }
    {
        std::lock_guard lock(m_mutex);
        if (!m_thread.joinable()) return;
    }
    kick();
    m_thread.join();
}

Vcpu::State Vcpu::state() const {
    std::lock_guard lock(m_mutex);
    if (m_thread_exited) return State::stopped;
    // Not started yet: report what it will do when started.
    if (m_current == State::created && m_requested == State::paused) return State::paused;
    return m_current;
}

void Vcpu::request_error(std::string reason) {
    m_ctx.exits->request(VmExitKind::error, fmt::format("vCPU {}: {}", id(), reason));
}

void Vcpu::thread_main() {
    // Named before the filter: "vcpu0" in top, and in the kernel's seccomp audit
    // records (comm=) under --seccomp log.
    (void)::pthread_setname_np(::pthread_self(), fmt::format("vcpu{}", id()).c_str());
    if (auto r = apply_seccomp(ThreadKind::vcpu, m_ctx.seccomp); !r) {
        request_error(r.error().message());
    } else {
        run_loop();
    }
    std::lock_guard lock(m_mutex);
    m_current = State::stopped;
    m_thread_exited = true;
    m_cv.notify_all();
}

void Vcpu::run_loop() {
    for (;;) {
        {
            std::unique_lock lock(m_mutex);
            if (m_requested == State::stopped) break;
            if (m_requested == State::paused) {
                m_current = State::paused;
                m_cv.notify_all();
                m_cv.wait(lock, [this] { return m_requested != State::paused; });
                continue;
            }
            if (m_current != State::running) {
                m_current = State::running;
                m_cv.notify_all();
            }
        }
        auto exit = m_fd.run();
        if (!exit) {
            request_error(exit.error().message());
            break;
        }
        if (!handle_exit(*exit)) break;
    }
}

bool Vcpu::handle_exit(const kvm::VcpuExit& exit) {
    namespace ex = kvm::exit;
    if (const auto* io = std::get_if<ex::IoOut>(&exit)) {
        for (size_t at = 0; at + io->size <= io->data.size(); at += io->size) {
            if (!m_ctx.pio->write(io->port, io->data.subspan(at, io->size))) {
                log_unhandled("unhandled port write {:#x} size {}", io->port, io->size);
            }
        }
        return true;
    }
    if (const auto* io = std::get_if<ex::IoIn>(&exit)) {
        for (size_t at = 0; at + io->size <= io->data.size(); at += io->size) {
            auto chunk = io->data.subspan(at, io->size);
            // An absent ISA port floats high.
            std::fill(chunk.begin(), chunk.end(), std::byte{0xff});
            if (!m_ctx.pio->read(io->port, chunk)) log_unhandled("unhandled port read {:#x}", io->port);
        }
        return true;
    }
    if (const auto* mmio = std::get_if<ex::MmioWrite>(&exit)) {
        if (!m_ctx.mmio->write(mmio->addr, mmio->data)) log_unhandled("unhandled MMIO write {:#x}", mmio->addr);
        return true;
    }
    if (const auto* mmio = std::get_if<ex::MmioRead>(&exit)) {
        std::fill(mmio->data.begin(), mmio->data.end(), std::byte{0});
        if (!m_ctx.mmio->read(mmio->addr, mmio->data)) log_unhandled("unhandled MMIO read {:#x}", mmio->addr);
        return true;
    }
    if (std::holds_alternative<ex::Interrupted>(exit)) {
        m_fd.set_immediate_exit(false);
        return true;
    }
    // An AP's first KVM_RUN after INIT/SIPI returns EAGAIN: enter again.
    if (std::holds_alternative<ex::Again>(exit) || std::holds_alternative<ex::Hlt>(exit)) return true;
    if (std::holds_alternative<ex::Shutdown>(exit)) {
        auto regs = m_fd.get_regs();
        request_error(fmt::format("triple fault (KVM_EXIT_SHUTDOWN) at rip {:#x}", regs ? regs->rip : 0));
        return false;
    }
    if (const auto* ev = std::get_if<ex::SystemEvent>(&exit)) {
        if (ev->type == KVM_SYSTEM_EVENT_RESET) {
            m_ctx.exits->request(VmExitKind::reset, fmt::format("vCPU {}: guest reset", id()));
        } else if (ev->type == KVM_SYSTEM_EVENT_SHUTDOWN) {
            m_ctx.exits->request(VmExitKind::poweroff, fmt::format("vCPU {}: guest powered off", id()));
        } else {
            request_error(fmt::format("guest crashed (system event {})", ev->type));
        }
        return false;
    }
    if (const auto* fail = std::get_if<ex::FailEntry>(&exit)) {
        request_error(fmt::format("KVM_EXIT_FAIL_ENTRY, hardware reason {:#x}", fail->reason));
        return false;
    }
    if (const auto* err = std::get_if<ex::InternalError>(&exit)) return handle_internal_error(*err);
    const auto& unknown = std::get<ex::Unknown>(exit);
    request_error(fmt::format("unexpected KVM exit reason {}", unknown.reason));
    return false;
}

bool Vcpu::handle_internal_error(const kvm::exit::InternalError& err) {
    auto regs = m_fd.get_regs();
    uint64_t rip = regs ? regs->rip : 0;
    std::vector<uint8_t> bytes = err.insn_bytes;
    if (bytes.empty() && regs) {
        // Older hosts do not report the bytes: fetch the first one ourselves.
        if (auto gpa = m_fd.translate(rip)) {
            if (auto b = m_ctx.memory->read_obj<uint8_t>(memory::GuestAddress(*gpa))) bytes.push_back(*b);
        }
    }
    if (err.suberror == KVM_INTERNAL_ERROR_EMULATION && m_ctx.pvm_workarounds) {
        auto fix = pvm::classify_emulation_failure(bytes);
        if (fix != pvm::EmulationFix::none) {
            if (auto r = pvm::apply(m_fd, fix); r) return true;
            else request_error(fmt::format("applying the emulation work-around: {}", r.error().message()));
            return false;
        }
    }
    request_error(fmt::format("KVM internal error, suberror {} at rip {:#x} (instruction bytes: {})", err.suberror,
                              rip, hex_bytes(bytes)));
    return false;
}

}  // namespace vmm
