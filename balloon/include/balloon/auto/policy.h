// The automatic balloon policy (docs/auto-balloon.md): from host memory pressure
// (PSI) and guest pressure (balloon statistics, HyperAlloc install rate), one
// decision per tick about the balloon target and, for HyperAlloc, how much soft
// reclaim may take. Pure: no I/O, no clock; the controller passes the time in, so
// recorded traces replay exactly.
//
// Rules, in order:
//  1. Guest pressure wins at once: deflate by a step or by what the guest is short
//     of, whichever is more; an inflate in progress (target > actual) is cancelled
//     from where the guest got to; no inflate for `hysteresis` afterwards.
//  2. A target above guest RAM - floor is brought back to it.
//  3. Host pressure inflates by at most a step per tick, outside the hysteresis
//     window, with fresh guest statistics, never beyond guest RAM - floor, never
//     while the guest is more than a step behind, and never so far that the guest's
//     available memory would fall within a step of its minimum.
//  4. An idle host may deflate slowly (idle_deflate_bytes per tick); otherwise hold.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "balloon/auto/counter_rate.h"
#include "balloon/auto/policy_config.h"
#include "balloon/auto/psi.h"
#include "common/result.h"

namespace vmm::balloon::auto_balloon {

// What the guest last reported (virtio-balloon statistics); every field is an
// untrusted hint and may be missing.
struct GuestStats {
    std::optional<uint64_t> available_bytes;
    std::optional<uint64_t> total_bytes;
    std::optional<uint64_t> major_faults;     // cumulative since the guest booted
    std::optional<uint64_t> alloc_stalls;     // cumulative since the guest booted
    std::chrono::milliseconds sampled_at{0};  // same time base as PolicyInput::now
};

struct PolicyInput {
    std::chrono::milliseconds now{0};   // a monotonic time; only differences matter
    std::optional<PsiSample> host_psi;  // nullopt when reading PSI failed
    std::optional<GuestStats> guest;
    std::optional<double> installs_per_s;  // HyperAlloc only
    uint64_t target_bytes = 0;             // balloon size asked for (HyperAlloc: hard target)
    uint64_t actual_bytes = 0;             // balloon size the guest (or the host) reached
    uint64_t guest_ram_bytes = 0;
};

enum class Action { none, inflate, deflate, cancel_inflate };
std::string_view action_name(Action action);

// HyperAlloc soft reclaim without a per-period limit.
inline constexpr uint64_t kSoftReclaimUnlimited = UINT64_MAX;

struct Decision {
    Action action = Action::none;
    uint64_t new_target_bytes = 0;  // the current target when action is none
    // HyperAlloc only: most soft reclaim may take per auto period; 0 stops it,
    // kSoftReclaimUnlimited lifts the limit.
    std::optional<uint64_t> soft_reclaim_bytes;
    // "host PSI some avg10 23.40% > 10%: inflate by 256 MiB to 1280 MiB"
    std::string reason;
};

// What the statistics endpoint shows.
struct PolicyStatus {
    std::optional<Decision> last_decision;
    std::chrono::milliseconds last_decision_at{0};
    std::optional<Decision> last_action;  // the last decision that changed something
    std::chrono::milliseconds last_action_at{0};
    uint64_t decisions = 0;
    uint64_t inflates = 0;
    uint64_t deflates = 0;
    uint64_t cancels = 0;
    std::optional<std::chrono::milliseconds> in_hysteresis_until;
    bool host_pressure = false;
    bool guest_pressure = false;
    std::optional<double> major_faults_per_s;
    std::optional<double> alloc_stalls_per_s;
};

class AutoBalloonPolicy {
public:
    [[nodiscard]] static Result<AutoBalloonPolicy> create(const PolicyConfig& config);

    // One tick. Never fails: missing or implausible inputs lead to a hold with the
    // reason saying what was missing.
    Decision decide(const PolicyInput& input);

    const PolicyStatus& status() const { return m_status; }
    const PolicyConfig& config() const { return m_config; }

private:
    struct GuestView;
    struct HostView;

    explicit AutoBalloonPolicy(const PolicyConfig& config) : m_config(config) {}
    GuestView assess_guest(const PolicyInput& input);
    HostView assess_host(const PolicyInput& input);
    Decision on_guest_pressure(const PolicyInput& input, const GuestView& guest);
    Decision on_host_pressure(const PolicyInput& input, const GuestView& guest, const HostView& host,
                              uint64_t limit) const;
    bool in_hysteresis(std::chrono::milliseconds now) const;
    void record(const Decision& decision, std::chrono::milliseconds now);

    PolicyConfig m_config;
    PolicyStatus m_status;
    CounterRate m_major_faults;
    CounterRate m_alloc_stalls;
};

// "auto-balloon t=125.0s inflate: host PSI some avg10 23.40% > 10%: inflate by
// 256 MiB to 1280 MiB" (docs/auto-balloon.md, decision log).
std::string format_decision_log(const Decision& decision, std::chrono::milliseconds now);
// "256 MiB", "1.5 MiB".
std::string format_mib(uint64_t bytes);

}  // namespace vmm::balloon::auto_balloon
