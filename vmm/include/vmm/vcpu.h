// One vCPU thread: runs KVM_RUN, dispatches port and MMIO exits to the buses, and
// obeys a small running/paused/stopped state machine driven by the VMM thread.
// A kick (immediate_exit + a real-time signal) gets the thread out of KVM_RUN.
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "devices/bus.h"
#include "memory/guest_memory.h"
#include "vmm/exit_notifier.h"
#include "vmm/kvm/vcpu_fd.h"
#include "vmm/vm_config.h"

namespace vmm {

struct VcpuContext {
    const devices::Bus* pio;
    const devices::Bus* mmio;
    const memory::GuestMemory* memory;
    ExitNotifier* exits;
    bool pvm_workarounds;  // host is kvm_pvm: answer int3/fwait emulation failures
    // The filter the vCPU thread installs on itself before its first KVM_RUN
    // (docs/seccomp.md); failing to install it stops the VM with an error.
    SeccompMode seccomp = SeccompMode::on;
};

class Vcpu {
public:
    // created: the thread has not been started (a pause() before start is honoured).
    enum class State { created, running, paused, stopped };

    Vcpu(kvm::VcpuFd fd, VcpuContext context);
    Vcpu(const Vcpu&) = delete;
    Vcpu& operator=(const Vcpu&) = delete;
    ~Vcpu();  // stops and joins

    uint32_t id() const { return m_fd.id(); }
    kvm::VcpuFd& fd() { return m_fd; }

    void start();
    // These block until the vCPU thread has acknowledged the new state.
    void pause();
    void resume();
    void stop();
    State state() const;

    // Installs the (empty) kick signal handler once per process.
    static void install_kick_handler();

private:
    void thread_main();
    void run_loop();
    // False when the vCPU must stop running.
    bool handle_exit(const kvm::VcpuExit& exit);
    bool handle_internal_error(const kvm::exit::InternalError& err);
    void kick();
    void request_error(std::string reason);

    kvm::VcpuFd m_fd;
    VcpuContext m_ctx;
    mutable std::mutex m_mutex;
    std::condition_variable m_cv;
    State m_requested = State::running;
    State m_current = State::created;
    bool m_thread_exited = false;
    std::thread m_thread;
    pthread_t m_native = {};
};

}  // namespace vmm
