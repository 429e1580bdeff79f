#include "balloon/auto/policy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/size.h"

namespace vmm::balloon::auto_balloon {

namespace {

using std::chrono::milliseconds;

uint64_t align_down(uint64_t bytes, uint64_t granularity) { return bytes - bytes % granularity; }

uint64_t align_up(uint64_t bytes, uint64_t granularity) {
    uint64_t down = align_down(bytes, granularity);
    return down == bytes ? bytes : down + granularity;
}

std::string format_time(milliseconds t) {
    return fmt::format("t={:.1f}s", static_cast<double>(t.count()) / 1000);
}

std::string join(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& part : parts) out += (out.empty() ? "" : ", ") + part;
    return out;
}

}  // namespace

std::string format_mib(uint64_t bytes) {
    if (bytes % kMiB == 0) return fmt::format("{} MiB", bytes / kMiB);
    return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / static_cast<double>(kMiB));
}

std::string_view action_name(Action action) {
    switch (action) {
        case Action::none: return "none";
        case Action::inflate: return "inflate";
        case Action::deflate: return "deflate";
        case Action::cancel_inflate: return "cancel_inflate";
    }
    return "unknown";
}

std::string format_decision_log(const Decision& decision, milliseconds now) {
    return fmt::format("auto-balloon {} {}: {}", format_time(now), action_name(decision.action),
                       decision.reason);
}

struct AutoBalloonPolicy::GuestView {
    bool fresh_stats = false;           // statistics no older than stats_max_age
    bool signal = false;                // anything at all tells us about guest pressure
    std::vector<std::string> pressure;  // why the guest is under pressure (empty: it is not)
    std::optional<uint64_t> available;  // clamped to guest RAM
    uint64_t minimum = 0;               // available memory below this is guest pressure
    uint64_t shortfall = 0;             // how far available memory is below its minimum
    std::optional<uint64_t> headroom;   // how much an inflate may take (rule 3)
};

struct AutoBalloonPolicy::HostView {
    bool known = false;
    bool pressure = false;
    bool idle = false;
    std::string summary;  // why there is host pressure, or the PSI values when there is none
};

Result<AutoBalloonPolicy> AutoBalloonPolicy::create(const PolicyConfig& config) {
    VMM_TRY(validate(config));
    return AutoBalloonPolicy(config);
}

bool AutoBalloonPolicy::in_hysteresis(milliseconds now) const {
    return m_status.in_hysteresis_until && now < *m_status.in_hysteresis_until;
}

AutoBalloonPolicy::GuestView AutoBalloonPolicy::assess_guest(const PolicyInput& in) {
    const GuestThresholds& t = m_config.guest;
    GuestView view;
    // A report from the future (clock confusion) counts as fresh rather than stale.
    view.fresh_stats = in.guest && in.now - in.guest->sampled_at <= m_config.stats_max_age;
    view.signal = view.fresh_stats || in.installs_per_s.has_value();
    m_status.major_faults_per_s.reset();
    m_status.alloc_stalls_per_s.reset();
    if (view.fresh_stats) {
        const GuestStats& g = *in.guest;
        if (g.available_bytes) {
            // The guest may report anything; RAM (and its own total, if any) bounds it.
            uint64_t ceiling = in.guest_ram_bytes;
            if (g.total_bytes.value_or(0) > 0) ceiling = std::min(ceiling, *g.total_bytes);
            uint64_t available = std::min(*g.available_bytes, ceiling);
            auto by_fraction =
                static_cast<uint64_t>(t.available_min_fraction * static_cast<double>(in.guest_ram_bytes));
            uint64_t minimum = std::max(by_fraction, t.available_min_bytes);
            view.available = available;
            view.minimum = minimum;
            if (available < minimum) {
                view.shortfall = minimum - available;
                view.pressure.push_back(
                    fmt::format("guest available {} < {}", format_mib(available), format_mib(minimum)));
            }
            uint64_t keep = 0;
            if (__builtin_add_overflow(minimum, m_config.step_bytes, &keep)) keep = UINT64_MAX;
            view.headroom = available > keep ? available - keep : 0;
        }
        if (g.major_faults)
            m_status.major_faults_per_s = m_major_faults.update(*g.major_faults, g.sampled_at);
        if (g.alloc_stalls)
            m_status.alloc_stalls_per_s = m_alloc_stalls.update(*g.alloc_stalls, g.sampled_at);
        if (auto rate = m_status.major_faults_per_s; rate && *rate > t.major_faults_per_s) {
            view.pressure.push_back(
                fmt::format("guest major faults {:.0f}/s > {:g}/s", *rate, t.major_faults_per_s));
        }
        if (auto rate = m_status.alloc_stalls_per_s; rate && *rate > t.alloc_stalls_per_s) {
            view.pressure.push_back(
                fmt::format("guest allocation stalls {:.1f}/s > {:g}/s", *rate, t.alloc_stalls_per_s));
        }
    }
    if (in.installs_per_s && std::isfinite(*in.installs_per_s) && *in.installs_per_s > t.installs_per_s) {
        view.pressure.push_back(
            fmt::format("HyperAlloc installs {:.0f}/s > {:g}/s", *in.installs_per_s, t.installs_per_s));
    }
    m_status.guest_pressure = !view.pressure.empty();
    return view;
}

AutoBalloonPolicy::HostView AutoBalloonPolicy::assess_host(const PolicyInput& in) {
    const HostThresholds& t = m_config.host;
    HostView view;
    if (!in.host_psi) {
        view.summary = "no host PSI sample";
        m_status.host_pressure = false;
        return view;
    }
    view.known = true;
    const PsiLine& some = in.host_psi->some;
    double full10 = in.host_psi->full ? in.host_psi->full->avg10 : 0.0;
    if (some.avg10 > t.some_high) {
        view.pressure = true;
        view.summary = fmt::format("host PSI some avg10 {:.2f}% > {:g}%", some.avg10, t.some_high);
    } else if (full10 > t.full_high) {
        view.pressure = true;
        view.summary = fmt::format("host PSI full avg10 {:.2f}% > {:g}%", full10, t.full_high);
    } else if (m_status.host_pressure && some.avg10 > t.some_low) {
        // Between the marks the previous state holds, so that avg10 wobbling around
        // one threshold does not switch inflation on and off every tick.
        view.pressure = true;
        view.summary = fmt::format("host PSI some avg10 {:.2f}% still > {:g}%", some.avg10, t.some_low);
    } else {
        view.idle = some.avg10 <= t.idle && some.avg60 <= t.idle;
        view.summary = fmt::format("PSI some avg10 {:.2f}%, avg60 {:.2f}%, full avg10 {:.2f}%", some.avg10,
                                   some.avg60, full10);
    }
    m_status.host_pressure = view.pressure;
    return view;
}

Decision AutoBalloonPolicy::on_guest_pressure(const PolicyInput& in, const GuestView& guest) {
    const uint64_t granularity = m_config.granularity();
    milliseconds until = in.now + m_config.hysteresis;
    m_status.in_hysteresis_until = until;
    std::string why = join(guest.pressure);
    std::string after = fmt::format("no inflate until {}", format_time(until));

    uint64_t amount = align_up(std::max(m_config.step_bytes, guest.shortfall), granularity);
    Decision d;
    if (in.target_bytes > in.actual_bytes) {
        // Stop the inflate where the guest got to, and give back from there.
        uint64_t from = in.actual_bytes;
        d.action = Action::cancel_inflate;
        d.new_target_bytes = from > amount ? align_down(from - amount, granularity) : 0;
        d.reason =
            fmt::format("{}: cancel inflate in progress (target {}, actual {}), deflate to {}; {}", why,
                        format_mib(in.target_bytes), format_mib(from), format_mib(d.new_target_bytes), after);
        return d;
    }
    if (in.target_bytes == 0) {
        d.new_target_bytes = 0;
        d.reason = fmt::format("{}: balloon already empty; {}", why, after);
        return d;
    }
    d.action = Action::deflate;
    d.new_target_bytes = in.target_bytes > amount ? align_down(in.target_bytes - amount, granularity) : 0;
    d.reason =
        fmt::format("{}: deflate by {} to {}; {}", why, format_mib(in.target_bytes - d.new_target_bytes),
                    format_mib(d.new_target_bytes), after);
    return d;
}

Decision AutoBalloonPolicy::on_host_pressure(const PolicyInput& in, const GuestView& guest,
                                             const HostView& host, uint64_t limit) const {
    Decision d;
    d.new_target_bytes = in.target_bytes;
    const std::string& why = host.summary;
    if (in_hysteresis(in.now)) {
        d.reason = fmt::format("{}: no inflate until {} (guest pressure hysteresis)", why,
                               format_time(*m_status.in_hysteresis_until));
        return d;
    }
    if (!guest.signal) {
        d.reason = fmt::format("{}: no fresh guest statistics, not inflating blind", why);
        return d;
    }
    if (in.target_bytes >= limit) {
        d.reason =
            fmt::format("{}: balloon at its limit {} (guest RAM {} - floor {})", why, format_mib(limit),
                        format_mib(in.guest_ram_bytes), format_mib(m_config.floor_bytes));
        return d;
    }
    if (in.target_bytes > in.actual_bytes && in.target_bytes - in.actual_bytes > m_config.step_bytes) {
        d.reason = fmt::format("{}: waiting for the guest (actual {} of target {})", why,
                               format_mib(in.actual_bytes), format_mib(in.target_bytes));
        return d;
    }
    uint64_t amount = std::min(m_config.step_bytes, limit - in.target_bytes);
    if (guest.headroom && *guest.headroom < amount) {
        // Slivers are not worth a round trip to the guest: a headroom below a quarter
        // step counts as none.
        if (*guest.headroom < m_config.step_bytes / 4) {
            d.reason = fmt::format("{}: guest available {} is within a step of its minimum {}", why,
                                   format_mib(guest.available.value_or(0)), format_mib(guest.minimum));
            return d;
        }
        amount = *guest.headroom;
    }
    amount = align_down(amount, m_config.granularity());
    if (amount == 0) {
        d.reason = fmt::format("{}: less than one balloon unit ({}) to inflate", why,
                               format_size(m_config.granularity()));
        return d;
    }
    d.action = Action::inflate;
    d.new_target_bytes = in.target_bytes + amount;
    d.reason =
        fmt::format("{}: inflate by {} to {}", why, format_mib(amount), format_mib(d.new_target_bytes));
    return d;
}

Decision AutoBalloonPolicy::decide(const PolicyInput& in) {
    const uint64_t granularity = m_config.granularity();
    GuestView guest = assess_guest(in);
    HostView host = assess_host(in);
    uint64_t limit = in.guest_ram_bytes > m_config.floor_bytes
                         ? align_down(in.guest_ram_bytes - m_config.floor_bytes, granularity)
                         : 0;

    Decision d;
    d.new_target_bytes = in.target_bytes;
    if (in.guest_ram_bytes == 0) {
        d.reason = "guest RAM unknown: hold";
    } else if (!guest.pressure.empty()) {
        d = on_guest_pressure(in, guest);
    } else if (in.target_bytes > limit) {
        d.action = Action::deflate;
        d.new_target_bytes = limit;
        d.reason = fmt::format("target {} above the limit (guest RAM {} - floor {}): deflate to {}",
                               format_mib(in.target_bytes), format_mib(in.guest_ram_bytes),
                               format_mib(m_config.floor_bytes), format_mib(limit));
    } else if (host.pressure) {
        d = on_host_pressure(in, guest, host, limit);
    } else if (host.idle && m_config.idle_deflate_bytes > 0 && in.target_bytes > 0) {
        uint64_t amount = std::min(align_up(m_config.idle_deflate_bytes, granularity), in.target_bytes);
        d.action = Action::deflate;
        d.new_target_bytes = align_down(in.target_bytes - amount, granularity);
        d.reason =
            fmt::format("host idle ({}): deflate by {} to {}", host.summary,
                        format_mib(in.target_bytes - d.new_target_bytes), format_mib(d.new_target_bytes));
    } else {
        d.reason =
            fmt::format("no pressure ({}{}): hold at {}", host.known ? "host " + host.summary : host.summary,
                        guest.signal ? "" : ", no fresh guest statistics", format_mib(in.target_bytes));
    }

    if (m_config.kind == BalloonKind::hyperalloc) {
        // Soft reclaim is what re-installs cost the guest: it stops with guest
        // pressure, runs freely with host pressure, and is rationed otherwise.
        if (!guest.pressure.empty() || in_hysteresis(in.now)) {
            d.soft_reclaim_bytes = 0;
            d.reason += "; soft reclaim stopped";
        } else if (host.pressure) {
            d.soft_reclaim_bytes = kSoftReclaimUnlimited;
            d.reason += "; soft reclaim unlimited";
        } else {
            d.soft_reclaim_bytes = m_config.soft_reclaim_calm_bytes;
            d.reason += m_config.soft_reclaim_calm_bytes == kSoftReclaimUnlimited
                            ? std::string("; soft reclaim unlimited")
                            : fmt::format("; soft reclaim {}/period", format_mib(m_config.soft_reclaim_calm_bytes));
        }
    }
    record(d, in.now);
    return d;
}

void AutoBalloonPolicy::record(const Decision& decision, milliseconds now) {
    ++m_status.decisions;
    m_status.last_decision = decision;
    m_status.last_decision_at = now;
    if (decision.action == Action::none) return;
    m_status.last_action = decision;
    m_status.last_action_at = now;
    switch (decision.action) {
        case Action::inflate: ++m_status.inflates; break;
        case Action::deflate: ++m_status.deflates; break;
        case Action::cancel_inflate: ++m_status.cancels; break;
        case Action::none: break;
    }
}

}  // namespace vmm::balloon::auto_balloon
