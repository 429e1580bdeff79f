// The automatic balloon controller: PSI source, tick timer, one policy run per tick,
// decisions applied to the balloon and logged (see vmm/auto_balloon.h).
#include "vmm/auto_balloon.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vmm {

namespace ab = balloon::auto_balloon;
using std::chrono::milliseconds;

namespace {

double seconds(milliseconds t) { return static_cast<double>(t.count()) / 1000; }

milliseconds since_vmm_start() {
    return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - log::start_time());
}

PsiInfo psi_info(const ab::PsiSample& s) {
    PsiInfo p;
    p.some_avg10 = s.some.avg10;
    p.some_avg60 = s.some.avg60;
    p.some_avg300 = s.some.avg300;
    p.some_total_us = s.some.total_us;
    if (s.full) {
        p.full_avg10 = s.full->avg10;
        p.full_avg60 = s.full->avg60;
        p.full_avg300 = s.full->avg300;
        p.full_total_us = s.full->total_us;
    }
    return p;
}

AutoBalloonDecisionInfo decision_info(const ab::Decision& d, milliseconds at) {
    return {std::string(ab::action_name(d.action)), d.new_target_bytes, d.soft_reclaim_bytes, d.reason,
            seconds(at)};
}

}  // namespace

Result<std::unique_ptr<AutoBalloonController>> AutoBalloonController::create(
    const ab::AutoBalloonOptions& options, std::unique_ptr<AutoBalloonPort> port, uint64_t guest_ram_bytes,
    EventLoop& loop, Clock clock) {
    if (!port) return Error::msg("auto-balloon: no balloon to control");
    VMM_TRY(ab::validate(options));
    ab::AutoBalloonPolicy policy = VMM_TRY(ab::AutoBalloonPolicy::create(options.policy));
    if (!clock) clock = since_vmm_start;
    std::unique_ptr<AutoBalloonController> controller(new AutoBalloonController(
        options, std::move(policy), std::move(port), guest_ram_bytes, loop, std::move(clock)));
    VMM_TRY(controller->open_psi());
    VMM_TRY(controller->start_timer());
    log::info("auto-balloon: on (tick {} ms, step {}, floor {}, hysteresis {} ms)", options.policy.tick.count(),
              ab::format_mib(options.policy.step_bytes), ab::format_mib(options.policy.floor_bytes),
              options.policy.hysteresis.count());
    controller->tick();
    return controller;
}

AutoBalloonController::AutoBalloonController(const ab::AutoBalloonOptions& options, ab::AutoBalloonPolicy policy,
                                             std::unique_ptr<AutoBalloonPort> port, uint64_t guest_ram_bytes,
                                             EventLoop& loop, Clock clock)
    : m_options(options), m_policy(std::move(policy)), m_port(std::move(port)), m_guest_ram_bytes(guest_ram_bytes),
      m_loop(loop), m_clock(std::move(clock)) {}

AutoBalloonController::~AutoBalloonController() {
    if (m_timer) (void)m_loop.remove(m_timer.get());
    if (m_psi_fd >= 0) (void)m_loop.remove(m_psi_fd);
}

Result<void> AutoBalloonController::open_psi() {
    std::string path = m_options.psi.path;
    if (path.empty()) path = VMM_TRY_CTX(ab::own_cgroup_memory_pressure_path(), "auto-balloon: psi=cgroup");
    std::optional<ab::PsiTrigger> trigger;
    if (m_options.psi.use_trigger) trigger = m_options.psi.trigger;
    auto source = ab::PsiSource::open(path, trigger);
    if (!source) {
        // Only the default may be missing: a kernel without PSI (or with psi=0)
        // still lets the controller act on guest pressure. A path the user named
        // must work.
        if (path != ab::kSystemMemoryPressure) return source.error().context("auto-balloon");
        m_psi_unavailable = source.error().message();
        log::warn("auto-balloon: no host memory pressure ({}); acting on guest pressure only", m_psi_unavailable);
        return ok();
    }
    m_psi.emplace(std::move(*source));
    if (m_psi->mode() == ab::PsiSource::Mode::trigger) {
        int fd = m_psi->poll_fd();
        VMM_TRY_CTX(m_loop.add(fd, EPOLLPRI, [this](uint32_t events) { on_psi_fd(events); }),
                    "auto-balloon: watching the PSI trigger");
        m_psi_fd = fd;
    }
    return ok();
}

Result<void> AutoBalloonController::start_timer() {
    m_timer = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!m_timer) return Error::from_errno("auto-balloon: timerfd_create");
    auto ms = m_options.policy.tick.count();
    itimerspec spec{};
    spec.it_interval.tv_sec = static_cast<time_t>(ms / 1000);
    spec.it_interval.tv_nsec = static_cast<long>((ms % 1000) * 1'000'000);
    spec.it_value = spec.it_interval;
    if (::timerfd_settime(m_timer.get(), 0, &spec, nullptr) != 0) {
        return Error::from_errno("auto-balloon: timerfd_settime");
    }
    return m_loop.add(m_timer.get(), EPOLLIN, [this](uint32_t) {
        uint64_t expirations = 0;
        // Nonblocking: EAGAIN is a spurious wake-up; missed ticks are not caught up.
        if (::read(m_timer.get(), &expirations, sizeof(expirations)) != static_cast<ssize_t>(sizeof(expirations))) {
            return;
        }
        tick();
    });
}

void AutoBalloonController::on_psi_fd(uint32_t events) {
    if (!m_psi) return;
    switch (m_psi->on_event(events)) {
        case ab::PsiEvent::pressure:
            ++m_psi_events;
            tick(true);
            break;
        case ab::PsiEvent::trigger_lost:
            // on_event() logged it; the tick timer goes on reading the file.
            (void)m_loop.remove(m_psi_fd);
            m_psi_fd = -1;
            break;
        case ab::PsiEvent::none: break;
    }
}

std::optional<ab::PsiSample> AutoBalloonController::read_psi() {
    if (!m_psi) return std::nullopt;
    auto sample = m_psi->read();
    if (!sample) {
        m_psi_error = sample.error().message();
        if (m_log_limit.allow()) log::warn("auto-balloon: reading host PSI: {}", *m_psi_error);
        return std::nullopt;
    }
    m_psi_error.reset();
    m_last_psi = *sample;
    return *sample;
}

void AutoBalloonController::tick(bool psi_event) {
    ++m_ticks;
    milliseconds now = m_clock();
    AutoBalloonPort::Reading reading = m_port->read(now);
    ab::PolicyInput input;
    input.now = now;
    input.host_psi = read_psi();
    input.guest = reading.guest;
    input.installs_per_s = reading.installs_per_s;
    input.target_bytes = reading.target_bytes;
    input.actual_bytes = reading.actual_bytes;
    input.guest_ram_bytes = m_guest_ram_bytes;
    m_installs_per_s = reading.installs_per_s;
    m_guest_available.reset();
    if (reading.guest && reading.guest->available_bytes) {
        m_guest_available = std::min(*reading.guest->available_bytes, m_guest_ram_bytes);
    }
    ab::Decision decision = m_policy.decide(input);
    if (psi_event) decision.reason += " [PSI trigger]";
    apply(decision, reading, now);
}

void AutoBalloonController::apply(const ab::Decision& d, const AutoBalloonPort::Reading& reading, milliseconds now) {
    bool changed = false;
    if (d.new_target_bytes != reading.target_bytes) {
        changed = true;
        if (auto set = m_port->set_target(d.new_target_bytes); !set) {
            ++m_apply_errors;
            log::warn("auto-balloon: setting the target to {}: {}", ab::format_mib(d.new_target_bytes),
                      set.error().message());
        }
    }
    if (d.soft_reclaim_bytes && d.soft_reclaim_bytes != m_applied_soft_reclaim) {
        changed = true;
        if (auto set = m_port->set_soft_reclaim(*d.soft_reclaim_bytes); !set) {
            ++m_apply_errors;
            log::warn("auto-balloon: setting soft reclaim: {}", set.error().message());
        } else {
            m_applied_soft_reclaim = d.soft_reclaim_bytes;
        }
    }
    // Changes at info, holds at debug: a steady state costs no log lines.
    std::string line = ab::format_decision_log(d, now);
    if (changed || d.action != ab::Action::none) {
        log::info("{}", line);
    } else {
        log::debug("{}", line);
    }
}

AutoBalloonInfo AutoBalloonController::info() const {
    const ab::PolicyStatus& s = m_policy.status();
    AutoBalloonInfo info;
    if (m_psi) {
        info.psi_path = m_psi->path();
        info.psi_mode = m_psi->mode() == ab::PsiSource::Mode::trigger ? "trigger" : "periodic";
        info.psi_mode_reason = m_psi->mode_reason();
    } else {
        info.psi_mode = "unavailable";
        info.psi_mode_reason = m_psi_unavailable;
    }
    if (m_last_psi) info.last_psi = psi_info(*m_last_psi);
    info.psi_error = m_psi_error;
    if (s.last_decision) info.last_decision = decision_info(*s.last_decision, s.last_decision_at);
    if (s.last_action) info.last_action = decision_info(*s.last_action, s.last_action_at);
    info.ticks = m_ticks;
    info.psi_events = m_psi_events;
    info.inflates = s.inflates;
    info.deflates = s.deflates;
    info.cancels = s.cancels;
    info.apply_errors = m_apply_errors;
    if (s.in_hysteresis_until) {
        info.in_hysteresis_until_s = seconds(*s.in_hysteresis_until);
        info.in_hysteresis = m_clock() < *s.in_hysteresis_until;
    }
    info.host_pressure = s.host_pressure;
    info.guest_pressure = s.guest_pressure;
    info.major_faults_per_s = s.major_faults_per_s;
    info.alloc_stalls_per_s = s.alloc_stalls_per_s;
    info.installs_per_s = m_installs_per_s;
    info.guest_available_bytes = m_guest_available;
    const ab::PolicyConfig& c = m_options.policy;
    info.tick_ms = static_cast<uint64_t>(c.tick.count());
    info.hysteresis_ms = static_cast<uint64_t>(c.hysteresis.count());
    info.step_bytes = c.step_bytes;
    info.floor_bytes = c.floor_bytes;
    return info;
}

}  // namespace vmm
