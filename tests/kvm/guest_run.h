// Test harness: one vmm::Vm booting the freestanding test guest in a given mode,
// with Vm::run() on its own thread and the serial output captured in a temp file.
// Every wait is bounded; a blocking VMM call that never returns ends the process
// with a HANG message (it cannot be unwound), so a hang is a loud failure.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "vmm/vm.h"

namespace vmm::test {

using namespace std::chrono_literals;

// Where the guest's counter mode stores its count (tests/guest/guest.h COUNTER_ADDR).
inline constexpr uint64_t kCounterAddr = 0x1f0000;

// Runs fn on another thread; if it has not returned after `limit`, prints
// "HANG: <what> ..." and ends the process with exit code 3.
void bounded(const std::string& what, std::chrono::milliseconds limit, const std::function<void()>& fn);

class GuestRun {
public:
    GuestRun(const std::string& mode, unsigned cpus, uint64_t memory_mib);
    // The same, with the configuration adjusted by `customize` before Vm::create and
    // the host services (e.g. a simulated VFIO) given to it.
    GuestRun(const std::string& mode, unsigned cpus, uint64_t memory_mib,
             const std::function<void(VmConfig&)>& customize, VmServices services);
    GuestRun(const GuestRun&) = delete;
    GuestRun& operator=(const GuestRun&) = delete;
    // Ends a still-running VM (poweroff), bounded, and removes the output file.
    ~GuestRun();

    Vm& vm() { return *m_vm; }
    // Starts Vm::run() on the run thread.
    void start();
    // The result of run(), or nullopt if it has not returned within `limit`.
    std::optional<Result<VmExitRequest>> wait_exit(std::chrono::milliseconds limit);
    // The guest's counter (REQUIREs that guest memory can be read).
    uint64_t counter() const;
    // True once the counter exceeds `value`, false if it did not within `limit`.
    bool wait_counter_above(uint64_t value, std::chrono::milliseconds limit) const;
    // Serial output so far.
    std::string output() const;
    // True once the serial output contains `text`, false if not within `limit`.
    bool wait_output(const std::string& text, std::chrono::milliseconds limit) const;

private:
    std::string m_output_path;
    std::unique_ptr<Vm> m_vm;
    std::promise<Result<VmExitRequest>> m_promise;
    std::future<Result<VmExitRequest>> m_future;
    std::thread m_thread;
    bool m_result_taken = false;
};

}  // namespace vmm::test
