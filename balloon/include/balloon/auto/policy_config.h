// Settings of the automatic balloon policy (docs/auto-balloon.md), with the
// --balloon ...,auto=on option keys that set them. Defaults follow the automatic
// ballooning seed patch: 60 s hysteresis, one step per tick.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "balloon/auto/psi_source.h"
#include "common/result.h"

namespace vmm::balloon::auto_balloon {

inline constexpr uint64_t kMiB = 1ull << 20;

enum class BalloonKind {
    virtio_balloon,  // targets in 4 KiB pages
    hyperalloc,      // hard targets in 2 MiB frames, plus the soft-reclaim limit
};

// Host PSI thresholds, in percent of wall time (the unit of the avg fields).
struct HostThresholds {
    double some_high = 10.0;  // some avg10 above this: host pressure starts
    double some_low = 5.0;    // ...and lasts while some avg10 stays above this
    double full_high = 5.0;   // full avg10 above this is host pressure as well
    double idle = 1.0;        // some avg10 and avg60 at or below: the host is idle
};

// The guest is under pressure when any one of these holds.
struct GuestThresholds {
    double available_min_fraction = 0.10;       // available < this share of guest RAM...
    uint64_t available_min_bytes = 128 * kMiB;  // ...or below this, whichever is larger
    double major_faults_per_s = 200;
    double alloc_stalls_per_s = 1;
    double installs_per_s = 64;  // HyperAlloc: 2 MiB frames re-installed per second
};

struct PolicyConfig {
    BalloonKind kind = BalloonKind::virtio_balloon;
    HostThresholds host;
    GuestThresholds guest;
    uint64_t step_bytes = 256 * kMiB;              // most the target moves per tick for host pressure
    uint64_t floor_bytes = 512 * kMiB;             // guest RAM the balloon never takes
    std::chrono::milliseconds hysteresis{60'000};  // no inflate this long after guest pressure
    std::chrono::milliseconds tick{5'000};         // how often the controller runs the policy
    // Older guest statistics count as missing (a hung guest or driver must not look
    // like a guest without pressure).
    std::chrono::milliseconds stats_max_age{15'000};
    uint64_t idle_deflate_bytes = 0;  // per tick while the host is idle; 0 = hold
    // HyperAlloc: soft reclaim per auto period when nobody is under pressure (under
    // host pressure it is unlimited, after guest pressure stopped).
    uint64_t soft_reclaim_calm_bytes = 256 * kMiB;

    // Targets are multiples of this: 4 KiB pages or 2 MiB HyperAlloc frames.
    uint64_t granularity() const { return kind == BalloonKind::hyperalloc ? 2 * kMiB : 4096; }
};

[[nodiscard]] Result<void> validate(const PolicyConfig& config);

// Where host pressure comes from.
struct HostPsiConfig {
    // kSystemMemoryPressure, a file path, or empty for the VMM's own cgroup.
    std::string path = kSystemMemoryPressure;
    bool use_trigger = true;
    PsiTrigger trigger;
};

struct AutoBalloonOptions {
    PolicyConfig policy;
    HostPsiConfig psi;
};

// True for the keys apply_option() knows (so that the --balloon parser can pass
// them on and keep rejecting the rest).
bool is_auto_option(std::string_view key);
// Every key apply_option() knows, sorted (for parsers that register keys up front).
std::vector<std::string_view> auto_option_keys();
// Sets one key=value from --balloon (e.g. "host_psi_high", "12.5"); error on an
// unknown key or a malformed value. Run validate() on the result afterwards.
[[nodiscard]] Result<void> apply_option(AutoBalloonOptions& options, std::string_view key,
                                        std::string_view value);
[[nodiscard]] Result<void> validate(const AutoBalloonOptions& options);

}  // namespace vmm::balloon::auto_balloon
