// One test per rule of AutoBalloonPolicy (balloon/auto/policy.h) and its edges.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "balloon/auto/policy.h"

using namespace vmm::balloon::auto_balloon;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

constexpr uint64_t MiB = kMiB;
constexpr uint64_t GiB = 1024 * MiB;

PsiSample psi(double some10, double full10 = 0.0, double some60 = 0.0) {
    PsiSample s;
    s.some = PsiLine{some10, some60, 0.0, 1000};
    s.full = PsiLine{full10, 0.0, 0.0, 100};
    return s;
}

const PsiSample kHostPressure = psi(23.4, 6.0 / 2, 11.9);
const PsiSample kHostCalm = psi(3.0, 0.5, 2.0);
const PsiSample kHostIdle = psi(0.2, 0.0, 0.1);

GuestStats stats(milliseconds at, uint64_t available, uint64_t major_faults = 1000, uint64_t stalls = 10) {
    GuestStats g;
    g.available_bytes = available;
    g.total_bytes = 4 * GiB;
    g.major_faults = major_faults;
    g.alloc_stalls = stalls;
    g.sampled_at = at;
    return g;
}

// A 4 GiB guest whose balloon follows the target at once unless told otherwise.
struct Vm {
    explicit Vm(PolicyConfig config = {}) : policy(AutoBalloonPolicy::create(config).value()) {}

    Decision tick(milliseconds now, std::optional<PsiSample> host, std::optional<GuestStats> guest,
                  std::optional<double> installs = std::nullopt) {
        PolicyInput in;
        in.now = now;
        in.host_psi = host;
        in.guest = guest;
        in.installs_per_s = installs;
        in.target_bytes = target;
        in.actual_bytes = actual;
        in.guest_ram_bytes = ram;
        Decision d = policy.decide(in);
        target = d.new_target_bytes;
        if (follows) actual = target;
        return d;
    }
    // Host pressure, a guest with plenty of memory available, no fault activity.
    Decision pressure_tick(milliseconds now) { return tick(now, kHostPressure, stats(now, 3 * GiB)); }

    AutoBalloonPolicy policy;
    uint64_t ram = 4 * GiB;
    uint64_t target = 0;
    uint64_t actual = 0;
    bool follows = true;
};

}  // namespace

TEST_CASE("policy: host pressure inflates one step per tick up to guest RAM - floor", "[auto][policy]") {
    Vm vm;
    milliseconds now = 0s;
    int inflates = 0;
    while (vm.target < 4 * GiB - 512 * MiB && inflates < 100) {
        uint64_t before = vm.target;
        Decision d = vm.pressure_tick(now += 5s);
        REQUIRE(d.action == Action::inflate);
        CHECK(d.new_target_bytes - before == 256 * MiB);
        ++inflates;
    }
    CHECK(inflates == 14);  // 3584 MiB in 256 MiB steps
    CHECK(vm.target == 3584 * MiB);
    Decision at_limit = vm.pressure_tick(now += 5s);
    CHECK(at_limit.action == Action::none);
    CHECK(at_limit.new_target_bytes == 3584 * MiB);
    CHECK(at_limit.reason.find("at its limit 3584 MiB (guest RAM 4096 MiB - floor 512 MiB)") !=
          std::string::npos);
    CHECK(vm.policy.status().inflates == 14);
}

TEST_CASE("policy: the reason names the signal, the threshold and the new target", "[auto][policy]") {
    Vm vm;
    vm.target = vm.actual = 1024 * MiB;
    Decision d = vm.tick(5s, psi(23.4), stats(5s, 3 * GiB));
    CHECK(d.action == Action::inflate);
    CHECK(d.new_target_bytes == 1280 * MiB);
    CHECK(d.reason == "host PSI some avg10 23.40% > 10%: inflate by 256 MiB to 1280 MiB");
    CHECK(format_decision_log(d, 5s) ==
          "auto-balloon t=5.0s inflate: host PSI some avg10 23.40% > 10%: inflate by 256 MiB to 1280 MiB");
    CHECK_FALSE(d.soft_reclaim_bytes.has_value());  // virtio-balloon: no soft reclaim
}

TEST_CASE("policy: the last step stops at the RAM bound", "[auto][policy]") {
    Vm vm;
    vm.target = vm.actual = 3500 * MiB;
    Decision d = vm.pressure_tick(5s);
    CHECK(d.action == Action::inflate);
    CHECK(d.new_target_bytes == 3584 * MiB);
}

TEST_CASE("policy: the floor", "[auto][policy]") {
    SECTION("a guest no larger than the floor is never inflated") {
        Vm vm;
        vm.ram = 512 * MiB;
        Decision d = vm.tick(5s, kHostPressure, stats(5s, 400 * MiB));
        CHECK(d.action == Action::none);
        CHECK(d.new_target_bytes == 0);
    }
    SECTION("a target that cuts into the floor is brought back") {
        Vm vm;
        vm.target = vm.actual = 3800 * MiB;
        Decision d = vm.tick(5s, kHostCalm, stats(5s, 3 * GiB));
        CHECK(d.action == Action::deflate);
        CHECK(d.new_target_bytes == 3584 * MiB);
        CHECK(d.reason.find("above the limit") != std::string::npos);
    }
}

TEST_CASE("policy: guest pressure from available memory deflates a step or the shortfall", "[auto][policy]") {
    // Minimum available for a 4 GiB guest: 10% = 409.6 MiB (above the 128 MiB floor).
    uint64_t minimum = static_cast<uint64_t>(0.1 * static_cast<double>(4 * GiB));
    SECTION("a small shortfall: one step") {
        Vm vm;
        vm.target = vm.actual = 1024 * MiB;
        Decision d = vm.tick(5s, kHostPressure, stats(5s, 300 * MiB));
        CHECK(d.action == Action::deflate);
        CHECK(d.new_target_bytes == 768 * MiB);
        CHECK(d.reason.rfind("guest available 300 MiB < 409.6 MiB: deflate by 256 MiB to 768 MiB; no inflate "
                             "until t=65.0s",
                             0) == 0);
    }
    SECTION("a large shortfall: all of it at once, page aligned") {
        Vm vm;
        vm.target = vm.actual = 1024 * MiB;
        Decision d = vm.tick(5s, kHostPressure, stats(5s, 50 * MiB));
        CHECK(d.action == Action::deflate);
        uint64_t shortfall = minimum - 50 * MiB;
        CHECK(1024 * MiB - d.new_target_bytes >= shortfall);
        CHECK(1024 * MiB - d.new_target_bytes < shortfall + 4096);
        CHECK(d.new_target_bytes % 4096 == 0);
    }
    SECTION("the absolute minimum applies to small guests") {
        Vm vm;
        vm.ram = 1 * GiB;  // 10% = 102.4 MiB < 128 MiB
        vm.target = vm.actual = 256 * MiB;
        CHECK(vm.tick(5s, kHostCalm, stats(5s, 120 * MiB)).action == Action::deflate);
    }
}

TEST_CASE("policy: guest pressure from major faults and allocation stalls", "[auto][policy]") {
    SECTION("major faults") {
        Vm vm;
        vm.target = vm.actual = 1024 * MiB;
        CHECK(vm.tick(5s, kHostCalm, stats(5s, 3 * GiB, 1000, 10)).action == Action::none);
        Decision d = vm.tick(10s, kHostCalm, stats(10s, 3 * GiB, 3000, 10));  // 400/s
        CHECK(d.action == Action::deflate);
        CHECK(d.reason.find("guest major faults 400/s > 200/s") != std::string::npos);
        CHECK(vm.policy.status().major_faults_per_s.value_or(0) == Approx(400));
    }
    SECTION("allocation stalls") {
        Vm vm;
        vm.target = vm.actual = 1024 * MiB;
        CHECK(vm.tick(5s, kHostCalm, stats(5s, 3 * GiB, 1000, 10)).action == Action::none);
        Decision d = vm.tick(10s, kHostCalm, stats(10s, 3 * GiB, 1000, 20));  // 2/s
        CHECK(d.action == Action::deflate);
        CHECK(d.reason.find("guest allocation stalls 2.0/s > 1/s") != std::string::npos);
    }
    SECTION("rates at the threshold are not pressure") {
        Vm vm;
        vm.target = vm.actual = 1024 * MiB;
        CHECK(vm.tick(5s, kHostCalm, stats(5s, 3 * GiB, 1000, 10)).action == Action::none);
        CHECK(vm.tick(10s, kHostCalm, stats(10s, 3 * GiB, 2000, 15)).action == Action::none);  // 200/s, 1/s
    }
}

TEST_CASE("policy: guest pressure cancels an inflate in progress", "[auto][policy]") {
    Vm vm;
    vm.follows = false;
    vm.target = 1280 * MiB;
    vm.actual = 1100 * MiB;
    Decision d = vm.tick(5s, kHostPressure, stats(5s, 200 * MiB));
    CHECK(d.action == Action::cancel_inflate);
    CHECK(d.new_target_bytes == 844 * MiB);  // from where the guest got to, one step down
    CHECK(
        d.reason.find("cancel inflate in progress (target 1280 MiB, actual 1100 MiB), deflate to 844 MiB") !=
        std::string::npos);
    CHECK(vm.policy.status().cancels == 1);
    CHECK(vm.policy.status().deflates == 0);
}

TEST_CASE("policy: guest pressure with an empty balloon still starts the hysteresis", "[auto][policy]") {
    Vm vm;
    Decision d = vm.tick(5s, kHostPressure, stats(5s, 100 * MiB));
    CHECK(d.action == Action::none);
    CHECK(d.reason.find("balloon already empty") != std::string::npos);
    CHECK(vm.policy.status().in_hysteresis_until == 65s);
    CHECK(vm.pressure_tick(10s).action == Action::none);
}

TEST_CASE("policy: hysteresis boundaries", "[auto][policy]") {
    Vm vm;
    vm.target = vm.actual = 1024 * MiB;
    REQUIRE(vm.tick(100s, kHostPressure, stats(100s, 200 * MiB)).action == Action::deflate);
    REQUIRE(vm.policy.status().in_hysteresis_until == 160s);
    Decision during = vm.pressure_tick(155s);
    CHECK(during.action == Action::none);
    CHECK(during.reason.find("no inflate until t=160.0s") != std::string::npos);
    CHECK(vm.pressure_tick(159'999ms).action == Action::none);
    CHECK(vm.pressure_tick(160s).action == Action::inflate);

    // Renewed guest pressure moves the end of the window.
    REQUIRE(vm.tick(170s, kHostPressure, stats(170s, 200 * MiB)).action == Action::deflate);
    CHECK(vm.policy.status().in_hysteresis_until == 230s);
    CHECK(vm.pressure_tick(229s).action == Action::none);
    CHECK(vm.pressure_tick(230s).action == Action::inflate);
}

TEST_CASE("policy: a hysteresis of zero lets host pressure inflate on the next tick", "[auto][policy]") {
    PolicyConfig config;
    config.hysteresis = 0s;
    Vm vm(config);
    vm.target = vm.actual = 1024 * MiB;
    REQUIRE(vm.tick(5s, kHostPressure, stats(5s, 200 * MiB)).action == Action::deflate);
    CHECK(vm.pressure_tick(10s).action == Action::inflate);
}

TEST_CASE("policy: guest counters going backwards (a reboot) are a reset, not pressure", "[auto][policy]") {
    Vm vm;
    vm.target = vm.actual = 1024 * MiB;
    CHECK(vm.tick(5s, kHostCalm, stats(5s, 3 * GiB, 900'000, 5'000)).action == Action::none);
    Decision after_reboot = vm.tick(10s, kHostCalm, stats(10s, 3 * GiB, 300, 0));
    CHECK(after_reboot.action == Action::none);
    CHECK_FALSE(vm.policy.status().major_faults_per_s.has_value());
    // The next interval is measured from the new baseline.
    Decision next = vm.tick(15s, kHostCalm, stats(15s, 3 * GiB, 5'300, 0));  // 1000/s
    CHECK(next.action == Action::deflate);
}

TEST_CASE("policy: missing or stale inputs never inflate", "[auto][policy]") {
    SECTION("no guest statistics") {
        Vm vm;
        Decision d = vm.tick(5s, kHostPressure, std::nullopt);
        CHECK(d.action == Action::none);
        CHECK(d.reason.find("not inflating blind") != std::string::npos);
    }
    SECTION("statistics older than stats_max_age") {
        Vm vm;
        CHECK(vm.tick(20s, kHostPressure, stats(5s, 3 * GiB)).action == Action::inflate);  // 15 s old: fresh
        CHECK(vm.tick(25s, kHostPressure, stats(5s, 3 * GiB)).action == Action::none);     // 20 s old: stale
    }
    SECTION("stale statistics showing pressure are not acted upon either") {
        Vm vm;
        vm.target = vm.actual = 1024 * MiB;
        CHECK(vm.tick(60s, kHostCalm, stats(5s, 10 * MiB)).action == Action::none);
    }
    SECTION("statistics without any field") {
        Vm vm;
        GuestStats empty;
        empty.sampled_at = 5s;
        Decision d = vm.tick(5s, kHostPressure, empty);
        CHECK(d.action == Action::inflate);  // fresh, and nothing in them says pressure
    }
    SECTION("no host PSI") {
        Vm vm;
        vm.target = vm.actual = 1024 * MiB;
        Decision d = vm.tick(5s, std::nullopt, stats(5s, 3 * GiB));
        CHECK(d.action == Action::none);
        CHECK(d.reason.find("no host PSI sample") != std::string::npos);
        // Guest pressure still wins without host PSI.
        CHECK(vm.tick(10s, std::nullopt, stats(10s, 100 * MiB)).action == Action::deflate);
    }
    SECTION("guest RAM unknown") {
        Vm vm;
        vm.ram = 0;
        CHECK(vm.pressure_tick(5s).action == Action::none);
    }
}

TEST_CASE("policy: host pressure band between the low and high marks", "[auto][policy]") {
    Vm vm;
    CHECK(vm.tick(5s, psi(7.0), stats(5s, 3 * GiB)).action == Action::none);  // 7% from calm: no
    CHECK(vm.tick(10s, psi(12.0), stats(10s, 3 * GiB)).action == Action::inflate);
    Decision band = vm.tick(15s, psi(7.0), stats(15s, 3 * GiB));
    CHECK(band.action == Action::inflate);
    CHECK(band.reason.find("host PSI some avg10 7.00% still > 5%") != std::string::npos);
    CHECK(vm.tick(20s, psi(4.0), stats(20s, 3 * GiB)).action == Action::none);
    CHECK_FALSE(vm.policy.status().host_pressure);
    CHECK(vm.tick(25s, psi(7.0), stats(25s, 3 * GiB)).action == Action::none);
}

TEST_CASE("policy: full stalls alone are host pressure", "[auto][policy]") {
    Vm vm;
    Decision d = vm.tick(5s, psi(8.0, 6.0), stats(5s, 3 * GiB));
    CHECK(d.action == Action::inflate);
    CHECK(d.reason.find("host PSI full avg10 6.00% > 5%") != std::string::npos);
    PsiSample no_full = psi(8.0);
    no_full.full.reset();
    CHECK(vm.tick(10s, no_full, stats(10s, 3 * GiB)).action == Action::inflate);  // band, from pressure
}

TEST_CASE("policy: no further step while the guest is more than a step behind", "[auto][policy]") {
    Vm vm;
    vm.follows = false;
    vm.target = 1024 * MiB;
    vm.actual = 512 * MiB;
    Decision d = vm.pressure_tick(5s);
    CHECK(d.action == Action::none);
    CHECK(d.reason.find("waiting for the guest (actual 512 MiB of target 1024 MiB)") != std::string::npos);
    vm.actual = 768 * MiB;  // one step behind: the next step may go out
    CHECK(vm.pressure_tick(10s).action == Action::inflate);
}

TEST_CASE("policy: an inflate keeps a step of headroom above the guest's minimum", "[auto][policy]") {
    Vm vm;  // minimum 409.6 MiB, so an inflate stops at 665.6 MiB available
    uint64_t keep = static_cast<uint64_t>(0.1 * static_cast<double>(4 * GiB)) + 256 * MiB;
    Decision partial = vm.tick(5s, kHostPressure, stats(5s, keep + 100 * MiB + 123));
    CHECK(partial.action == Action::inflate);
    CHECK(partial.new_target_bytes == 100 * MiB);  // page aligned, down
    Decision sliver = vm.tick(10s, kHostPressure, stats(10s, keep + 60 * MiB));
    CHECK(sliver.action == Action::none);  // under a quarter step (64 MiB)
    CHECK(sliver.reason.find("guest available 725.6 MiB is within a step of its minimum 409.6 MiB") !=
          std::string::npos);
    CHECK(vm.tick(15s, kHostPressure, stats(15s, keep + 64 * MiB)).new_target_bytes == 164 * MiB);
}

TEST_CASE("policy: an idle host may deflate slowly", "[auto][policy]") {
    SECTION("off by default") {
        Vm vm;
        vm.target = vm.actual = 1024 * MiB;
        Decision d = vm.tick(5s, kHostIdle, stats(5s, 2 * GiB));
        CHECK(d.action == Action::none);
        CHECK(d.reason.find("hold at 1024 MiB") != std::string::npos);
    }
    SECTION("when configured") {
        PolicyConfig config;
        config.idle_deflate_bytes = 64 * MiB;
        Vm vm(config);
        vm.target = vm.actual = 100 * MiB;
        Decision d = vm.tick(5s, kHostIdle, stats(5s, 2 * GiB));
        CHECK(d.action == Action::deflate);
        CHECK(d.new_target_bytes == 36 * MiB);
        CHECK(d.reason.find("host idle") != std::string::npos);
        CHECK(vm.tick(10s, kHostIdle, stats(10s, 2 * GiB)).new_target_bytes == 0);
        CHECK(vm.tick(15s, kHostIdle, stats(15s, 2 * GiB)).action == Action::none);  // empty
        vm.target = vm.actual = 100 * MiB;
        // Quiet now but busy over the last minute: not idle.
        CHECK(vm.tick(20s, psi(0.5, 0.0, 2.0), stats(20s, 2 * GiB)).action == Action::none);
    }
}

TEST_CASE("policy: HyperAlloc maps the same decisions to hard target and soft reclaim", "[auto][policy]") {
    PolicyConfig config;
    config.kind = BalloonKind::hyperalloc;
    config.step_bytes = 101 * MiB;  // not a frame multiple: targets stay in 2 MiB frames
    Vm vm(config);
    vm.ram = 16 * GiB;

    Decision calm = vm.tick(5s, kHostCalm, std::nullopt, 2.0);
    CHECK(calm.action == Action::none);
    CHECK(calm.soft_reclaim_bytes == 256 * MiB);
    CHECK(calm.reason.find("soft reclaim 256 MiB/period") != std::string::npos);

    Decision host = vm.tick(10s, kHostPressure, std::nullopt, 2.0);  // the install rate is the guest signal
    CHECK(host.action == Action::inflate);
    CHECK(host.new_target_bytes == 100 * MiB);
    CHECK(host.soft_reclaim_bytes == kSoftReclaimUnlimited);
    CHECK(host.reason.find("soft reclaim unlimited") != std::string::npos);
    CHECK(vm.tick(15s, kHostPressure, std::nullopt, 2.0).new_target_bytes == 200 * MiB);

    Decision guest = vm.tick(20s, kHostPressure, std::nullopt, 150.0);
    CHECK(guest.action == Action::deflate);
    CHECK(guest.new_target_bytes == 98 * MiB);  // 200 - 101 rounded to whole frames
    CHECK(guest.soft_reclaim_bytes == 0u);
    CHECK(guest.reason.find("HyperAlloc installs 150/s > 64/s") != std::string::npos);
    CHECK(guest.reason.find("soft reclaim stopped") != std::string::npos);

    Decision window = vm.tick(75s, kHostPressure, std::nullopt, 2.0);
    CHECK(window.action == Action::none);
    CHECK(window.soft_reclaim_bytes == 0u);
    Decision after = vm.tick(80s, kHostPressure, std::nullopt, 2.0);
    CHECK(after.action == Action::inflate);
    CHECK(after.soft_reclaim_bytes == kSoftReclaimUnlimited);
    CHECK(after.new_target_bytes % (2 * MiB) == 0);

    Decision no_signal = vm.tick(85s, kHostPressure, std::nullopt, std::nullopt);
    CHECK(no_signal.action == Action::none);
}

TEST_CASE("policy: the status shows counters, the last decision and the last action", "[auto][policy]") {
    Vm vm;
    vm.target = vm.actual = 1024 * MiB;
    vm.pressure_tick(5s);
    vm.tick(10s, kHostPressure, stats(10s, 100 * MiB));
    vm.follows = false;
    vm.target = 1024 * MiB;
    vm.tick(15s, kHostPressure, stats(15s, 100 * MiB));
    vm.tick(20s, kHostCalm, stats(20s, 3 * GiB));
    const PolicyStatus& s = vm.policy.status();
    CHECK(s.decisions == 4);
    CHECK(s.inflates == 1);
    CHECK(s.deflates == 1);
    CHECK(s.cancels == 1);
    CHECK(s.in_hysteresis_until == 75s);
    CHECK(s.last_decision_at == 20s);
    REQUIRE(s.last_decision);
    CHECK(s.last_decision->action == Action::none);
    CHECK(s.last_action_at == 15s);
    REQUIRE(s.last_action);
    CHECK(s.last_action->action == Action::cancel_inflate);
    CHECK_FALSE(s.host_pressure);
    CHECK_FALSE(s.guest_pressure);
    CHECK(action_name(Action::cancel_inflate) == "cancel_inflate");
}

TEST_CASE("policy: implausible guest values", "[auto][policy]") {
    Vm vm;
    vm.target = vm.actual = 1024 * MiB;
    GuestStats lies = stats(5s, UINT64_MAX, UINT64_MAX, UINT64_MAX);
    lies.total_bytes = 0;
    Decision d = vm.tick(5s, kHostPressure, lies, std::numeric_limits<double>::quiet_NaN());
    CHECK(d.action == Action::inflate);  // available clamped to RAM: plenty
    CHECK(d.new_target_bytes <= 4 * GiB - 512 * MiB);
    // A guest claiming a wildly high install rate only gets its own memory back.
    Decision burst = vm.tick(10s, kHostPressure, stats(10s, 3 * GiB), 1e300);
    CHECK(burst.action == Action::deflate);
    CHECK(burst.new_target_bytes < 1280 * MiB);
    CHECK(format_mib(1536 * 1024) == "1.5 MiB");
}

TEST_CASE("policy: HyperAlloc guest pressure stops soft reclaim even without a hysteresis",
          "[auto][policy]") {
    PolicyConfig config;
    config.kind = BalloonKind::hyperalloc;
    config.hysteresis = 0s;
    Vm vm(config);
    vm.ram = 16 * GiB;
    CHECK(vm.tick(5s, kHostPressure, std::nullopt, 500.0).soft_reclaim_bytes == 0u);
    CHECK(vm.tick(10s, kHostPressure, std::nullopt, 1.0).soft_reclaim_bytes == kSoftReclaimUnlimited);
}
