#include <catch2/catch.hpp>

#include <algorithm>

#include "balloon/auto/counter_rate.h"
#include "balloon/auto/policy_config.h"

using namespace vmm::balloon::auto_balloon;
using namespace std::chrono_literals;

TEST_CASE("auto options: the defaults are valid", "[auto][config]") {
    AutoBalloonOptions options;
    CHECK(validate(options));
    CHECK(options.policy.hysteresis == 60s);
    CHECK(options.psi.path == "/proc/pressure/memory");
    options.policy.kind = BalloonKind::hyperalloc;
    CHECK(options.policy.granularity() == 2 * kMiB);
    CHECK(validate(options));
}

TEST_CASE("auto options: every key sets its field", "[auto][config]") {
    AutoBalloonOptions o;
    struct KV {
        const char* key;
        const char* value;
    };
    for (KV kv : std::initializer_list<KV>{{"host_psi_high", "20%"},
                                           {"host_psi_low", "7.5"},
                                           {"host_psi_full", "3"},
                                           {"host_psi_idle", "0.5"},
                                           {"guest_avail_pct", "15"},
                                           {"guest_avail_min", "256M"},
                                           {"guest_majflt_rate", "500/s"},
                                           {"guest_stall_rate", "0"},
                                           {"install_rate", "128"},
                                           {"step", "128M"},
                                           {"floor", "1G"},
                                           {"idle_step", "32M"},
                                           {"soft_reclaim", "64M"},
                                           {"hysteresis", "2m"},
                                           {"tick", "500ms"},
                                           {"stats_max_age", "1.5s"},
                                           {"psi_stall", "150ms"},
                                           {"psi_window", "4s"},
                                           {"psi", "cgroup"},
                                           {"psi_trigger", "full"}}) {
        INFO(kv.key << "=" << kv.value);
        CHECK(is_auto_option(kv.key));
        CHECK(apply_option(o, kv.key, kv.value));
    }
    CHECK(o.policy.host.some_high == 20.0);
    CHECK(o.policy.host.some_low == 7.5);
    CHECK(o.policy.host.full_high == 3.0);
    CHECK(o.policy.host.idle == 0.5);
    CHECK(o.policy.guest.available_min_fraction == Approx(0.15));
    CHECK(o.policy.guest.available_min_bytes == 256 * kMiB);
    CHECK(o.policy.guest.major_faults_per_s == 500.0);
    CHECK(o.policy.guest.alloc_stalls_per_s == 0.0);
    CHECK(o.policy.guest.installs_per_s == 128.0);
    CHECK(o.policy.step_bytes == 128 * kMiB);
    CHECK(o.policy.floor_bytes == 1024 * kMiB);
    CHECK(o.policy.idle_deflate_bytes == 32 * kMiB);
    CHECK(o.policy.soft_reclaim_calm_bytes == 64 * kMiB);
    CHECK(o.policy.hysteresis == 120s);
    CHECK(o.policy.tick == 500ms);
    CHECK(o.policy.stats_max_age == 1500ms);
    CHECK(o.psi.trigger.stall == 150ms);
    CHECK(o.psi.trigger.window == 4s);
    CHECK(o.psi.path.empty());  // the VMM's own cgroup
    CHECK(o.psi.trigger.full);
    CHECK(o.psi.use_trigger);
    CHECK(validate(o));

    CHECK(apply_option(o, "psi", "/sys/fs/cgroup/vms/memory.pressure"));
    CHECK(o.psi.path == "/sys/fs/cgroup/vms/memory.pressure");
    CHECK(apply_option(o, "psi", "system"));
    CHECK(o.psi.path == "/proc/pressure/memory");
    CHECK(apply_option(o, "psi_trigger", "off"));
    CHECK_FALSE(o.psi.use_trigger);
    CHECK(apply_option(o, "hysteresis", "90"));  // bare number: seconds
    CHECK(o.policy.hysteresis == 90s);
}

TEST_CASE("auto options: bad keys and values", "[auto][config]") {
    AutoBalloonOptions o;
    CHECK_FALSE(is_auto_option("size"));
    CHECK_FALSE(apply_option(o, "size", "1G"));
    struct KV {
        const char* key;
        const char* value;
    };
    for (KV kv : std::initializer_list<KV>{{"host_psi_high", "101"},
                                           {"host_psi_high", "-1"},
                                           {"host_psi_high", "ten"},
                                           {"host_psi_high", ""},
                                           {"host_psi_low", "nan"},
                                           {"guest_majflt_rate", "-3/s"},
                                           {"step", "1Q"},
                                           {"floor", ""},
                                           {"hysteresis", "5h"},
                                           {"hysteresis", "2 s"},
                                           {"tick", "-1s"},
                                           {"hysteresis", "100000m"},
                                           {"psi", "relative/path"},
                                           {"psi_trigger", "maybe"}}) {
        INFO(kv.key << "=" << kv.value);
        auto r = apply_option(o, kv.key, kv.value);
        CHECK_FALSE(r);
        if (!r) CHECK(r.error().message().find(kv.key) != std::string::npos);
    }
}

TEST_CASE("auto options: validation of combinations", "[auto][config]") {
    auto invalid = [](auto change) {
        AutoBalloonOptions o;
        change(o);
        return !validate(o);
    };
    CHECK(invalid([](AutoBalloonOptions& o) { o.policy.host.some_low = 20; }));  // low above high
    CHECK(invalid([](AutoBalloonOptions& o) { o.policy.host.idle = 6; }));       // idle above low
    CHECK(invalid([](AutoBalloonOptions& o) { o.policy.guest.available_min_fraction = 1.0; }));
    CHECK(invalid([](AutoBalloonOptions& o) { o.policy.step_bytes = 0; }));
    CHECK(invalid([](AutoBalloonOptions& o) {
        o.policy.kind = BalloonKind::hyperalloc;
        o.policy.step_bytes = 1 * kMiB;  // below one 2 MiB frame
    }));
    CHECK(invalid([](AutoBalloonOptions& o) { o.policy.tick = 50ms; }));
    CHECK(invalid([](AutoBalloonOptions& o) { o.policy.stats_max_age = 1s; }));  // below the 5 s tick
    CHECK(invalid([](AutoBalloonOptions& o) { o.psi.trigger.window = 20s; }));
    CHECK(invalid([](AutoBalloonOptions& o) { o.psi.trigger.stall = 3s; }));
    CHECK_FALSE(invalid([](AutoBalloonOptions& o) {
        o.psi.use_trigger = false;
        o.psi.trigger.window = 20s;  // not used, not checked
    }));
}

TEST_CASE("counter rate: rates, resets and repeats", "[auto][policy]") {
    CounterRate rate;
    CHECK_FALSE(rate.update(1000, 0ms));                             // first sample: no rate yet
    CHECK(rate.update(1500, 5000ms).value_or(-1) == Approx(100.0));  // 500 in 5 s
    CHECK(rate.update(1500, 5000ms).value_or(-1) == Approx(100.0));  // the same report again
    CHECK(rate.update(1500, 10000ms).value_or(-1) == Approx(0.0));
    // The guest rebooted: the counter starts again; no negative or wrapped rate.
    CHECK_FALSE(rate.update(20, 15000ms));
    CHECK(rate.update(70, 20000ms).value_or(-1) == Approx(10.0));
    // Time going backwards starts a new baseline as well.
    CHECK_FALSE(rate.update(80, 10000ms));
    CHECK(rate.update(90, 11000ms).value_or(-1) == Approx(10.0));
    rate.reset();
    CHECK_FALSE(rate.last());
    CHECK_FALSE(rate.update(UINT64_MAX, 0ms));
    CHECK(rate.update(UINT64_MAX, 1000ms).value_or(-1) == Approx(0.0));
}

TEST_CASE("auto options: the key list is exactly what apply_option knows", "[auto][config]") {
    std::vector<std::string_view> keys = auto_option_keys();
    CHECK(keys.size() == 20);
    CHECK(std::is_sorted(keys.begin(), keys.end()));
    for (std::string_view key : keys) {
        INFO(key);
        CHECK(is_auto_option(key));
    }
    for (std::string_view key : {"step", "psi", "psi_trigger", "tick", "soft_reclaim"}) {
        CHECK(std::find(keys.begin(), keys.end(), key) != keys.end());
    }
    CHECK(std::find(keys.begin(), keys.end(), "size") == keys.end());
}
