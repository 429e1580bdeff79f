// The automatic balloon controller (issue 8, docs/auto-balloon.md): owned by the Vm,
// it runs the pure policy (balloon/auto/policy.h) on the VMM thread's event loop,
// once per tick (a timerfd) and at once when the PSI trigger fires (EPOLLPRI on the
// PsiSource's fd), and applies each decision to the balloon: a new target for
// either model, and for HyperAlloc the soft-reclaim limit of its auto passes.
// Changes are logged at info with their reason, holds at debug; info() is what the
// API shows. Everything runs on the VMM thread (API requests are answered there
// too), so nothing here locks.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "balloon/auto/policy.h"
#include "balloon/auto/policy_config.h"
#include "balloon/auto/psi_source.h"
#include "common/log.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "vmm/event_loop.h"
#include "vmm/vm_requests.h"

namespace vmm::balloon {
class VirtioBalloon;
}
namespace vmm::balloon::hyperalloc {
class HyperAllocDevice;
}

namespace vmm {

// The balloon as the controller sees it: one adapter per model
// (auto_balloon_ports.cpp); unit tests use a fake.
class AutoBalloonPort {
public:
    struct Reading {
        uint64_t target_bytes = 0;
        uint64_t actual_bytes = 0;
        std::optional<balloon::auto_balloon::GuestStats> guest;  // nullopt: nothing reported yet
        std::optional<double> installs_per_s;                    // HyperAlloc, once its zones are known
    };
    virtual ~AutoBalloonPort() = default;
    // `now` is the controller's clock (PolicyInput::now); guest statistics carry
    // their sampling time on the same clock.
    virtual Reading read(std::chrono::milliseconds now) = 0;
    [[nodiscard]] virtual Result<void> set_target(uint64_t bytes) = 0;
    // HyperAlloc: the policy's Decision::soft_reclaim_bytes (0 stops the auto
    // passes, kSoftReclaimUnlimited lifts the limit). The virtio-balloon has none.
    [[nodiscard]] virtual Result<void> set_soft_reclaim(uint64_t /*bytes*/) { return ok(); }
};

std::unique_ptr<AutoBalloonPort> make_auto_balloon_port(std::shared_ptr<balloon::VirtioBalloon> device);
std::unique_ptr<AutoBalloonPort> make_auto_balloon_port(
    std::shared_ptr<balloon::hyperalloc::HyperAllocDevice> device);

class AutoBalloonController {
public:
    using Clock = std::function<std::chrono::milliseconds()>;

    // Opens the PSI source (options.psi; an empty path is the VMM's own cgroup),
    // registers the tick timer and, in trigger mode, the PSI fd on `loop`, and runs
    // the first tick. A PSI file that cannot be opened is an error, except the
    // default /proc/pressure/memory: without PSI (a kernel without it) the
    // controller still acts on guest pressure and says so. `clock` defaults to the
    // time since the VMM started (the log's clock).
    [[nodiscard]] static Result<std::unique_ptr<AutoBalloonController>> create(
        const balloon::auto_balloon::AutoBalloonOptions& options, std::unique_ptr<AutoBalloonPort> port,
        uint64_t guest_ram_bytes, EventLoop& loop, Clock clock = {});
    AutoBalloonController(const AutoBalloonController&) = delete;
    AutoBalloonController& operator=(const AutoBalloonController&) = delete;
    ~AutoBalloonController();  // takes its fds off the loop

    // One policy run now; `psi_event` when the PSI trigger started it.
    void tick(bool psi_event = false);
    AutoBalloonInfo info() const;

private:
    AutoBalloonController(const balloon::auto_balloon::AutoBalloonOptions& options,
                          balloon::auto_balloon::AutoBalloonPolicy policy, std::unique_ptr<AutoBalloonPort> port,
                          uint64_t guest_ram_bytes, EventLoop& loop, Clock clock);
    [[nodiscard]] Result<void> open_psi();
    [[nodiscard]] Result<void> start_timer();
    void on_psi_fd(uint32_t events);
    std::optional<balloon::auto_balloon::PsiSample> read_psi();
    void apply(const balloon::auto_balloon::Decision& decision, const AutoBalloonPort::Reading& reading,
               std::chrono::milliseconds now);

    const balloon::auto_balloon::AutoBalloonOptions m_options;
    balloon::auto_balloon::AutoBalloonPolicy m_policy;
    std::unique_ptr<AutoBalloonPort> m_port;
    const uint64_t m_guest_ram_bytes;
    EventLoop& m_loop;
    Clock m_clock;

    std::optional<balloon::auto_balloon::PsiSource> m_psi;
    std::string m_psi_unavailable;  // why there is no PSI source
    int m_psi_fd = -1;              // registered on the loop (trigger mode)
    UniqueFd m_timer;

    std::optional<balloon::auto_balloon::PsiSample> m_last_psi;
    std::optional<std::string> m_psi_error;
    std::optional<uint64_t> m_applied_soft_reclaim;  // what the device was last told
    std::optional<double> m_installs_per_s;
    std::optional<uint64_t> m_guest_available;
    uint64_t m_ticks = 0;
    uint64_t m_psi_events = 0;
    uint64_t m_apply_errors = 0;
    mutable log::RateLimiter m_log_limit;
};

}  // namespace vmm
