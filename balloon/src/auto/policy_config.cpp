#include "balloon/auto/policy_config.h"

#include <charconv>
#include <cmath>
#include <functional>
#include <map>

#include "common/size.h"

namespace vmm::balloon::auto_balloon {

namespace {

Result<double> parse_number(std::string_view text) {
    double v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || !std::isfinite(v) || v < 0) {
        return Error::msg("'{}' is not a non-negative number", text);
    }
    return v;
}

// "12.5" or "12.5%".
Result<double> parse_percent(std::string_view text) {
    if (text.ends_with('%')) text.remove_suffix(1);
    double v = VMM_TRY(parse_number(text));
    if (v > 100) return Error::msg("{}% is more than 100%", v);
    return v;
}

// Events per second: "200" or "200/s".
Result<double> parse_rate(std::string_view text) {
    if (text.ends_with("/s")) text.remove_suffix(2);
    return parse_number(text);
}

// "60s", "500ms", "2m", "1.5s"; a bare number is seconds. At most one day.
Result<std::chrono::microseconds> parse_duration(std::string_view text) {
    double scale = 1e6;
    if (text.ends_with("ms")) {
        text.remove_suffix(2);
        scale = 1e3;
    } else if (text.ends_with('s')) {
        text.remove_suffix(1);
    } else if (text.ends_with('m')) {
        text.remove_suffix(1);
        scale = 60e6;
    }
    double v = VMM_TRY(parse_number(text));
    if (v * scale > 86400e6) return Error::msg("duration '{}' is longer than a day", text);
    return std::chrono::microseconds(static_cast<int64_t>(std::llround(v * scale)));
}

std::chrono::milliseconds to_ms(std::chrono::microseconds us) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(us);
}

using Setter = std::function<Result<void>(AutoBalloonOptions&, std::string_view)>;

template <typename Parse, typename Assign>
Setter setter(Parse parse, Assign assign) {
    return [parse, assign](AutoBalloonOptions& o, std::string_view value) -> Result<void> {
        auto parsed = parse(value);
        if (!parsed) return parsed.error();
        assign(o, *parsed);
        return ok();
    };
}

const std::map<std::string_view, Setter>& setters() {
    using O = AutoBalloonOptions;
    using us = std::chrono::microseconds;
    static const std::map<std::string_view, Setter> table = {
        {"host_psi_high", setter(parse_percent, [](O& o, double v) { o.policy.host.some_high = v; })},
        {"host_psi_low", setter(parse_percent, [](O& o, double v) { o.policy.host.some_low = v; })},
        {"host_psi_full", setter(parse_percent, [](O& o, double v) { o.policy.host.full_high = v; })},
        {"host_psi_idle", setter(parse_percent, [](O& o, double v) { o.policy.host.idle = v; })},
        {"guest_avail_pct",
         setter(parse_percent, [](O& o, double v) { o.policy.guest.available_min_fraction = v / 100; })},
        {"guest_avail_min", setter(parse_size, [](O& o, uint64_t v) { o.policy.guest.available_min_bytes = v; })},
        {"guest_majflt_rate", setter(parse_rate, [](O& o, double v) { o.policy.guest.major_faults_per_s = v; })},
        {"guest_stall_rate", setter(parse_rate, [](O& o, double v) { o.policy.guest.alloc_stalls_per_s = v; })},
        {"install_rate", setter(parse_rate, [](O& o, double v) { o.policy.guest.installs_per_s = v; })},
        {"step", setter(parse_size, [](O& o, uint64_t v) { o.policy.step_bytes = v; })},
        {"floor", setter(parse_size, [](O& o, uint64_t v) { o.policy.floor_bytes = v; })},
        {"idle_step", setter(parse_size, [](O& o, uint64_t v) { o.policy.idle_deflate_bytes = v; })},
        {"soft_reclaim", setter(parse_size, [](O& o, uint64_t v) { o.policy.soft_reclaim_calm_bytes = v; })},
        {"hysteresis", setter(parse_duration, [](O& o, us v) { o.policy.hysteresis = to_ms(v); })},
        {"tick", setter(parse_duration, [](O& o, us v) { o.policy.tick = to_ms(v); })},
        {"stats_max_age", setter(parse_duration, [](O& o, us v) { o.policy.stats_max_age = to_ms(v); })},
        {"psi_stall", setter(parse_duration, [](O& o, us v) { o.psi.trigger.stall = v; })},
        {"psi_window", setter(parse_duration, [](O& o, us v) { o.psi.trigger.window = v; })},
        {"psi",
         [](O& o, std::string_view v) -> Result<void> {
             if (v == "system") {
                 o.psi.path = kSystemMemoryPressure;
             } else if (v == "cgroup") {
                 o.psi.path.clear();
             } else if (v.starts_with('/')) {
                 o.psi.path = std::string(v);
             } else {
                 return Error::msg("'{}' is not system, cgroup or an absolute path", v);
             }
             return ok();
         }},
        {"psi_trigger",
         [](O& o, std::string_view v) -> Result<void> {
             if (v != "some" && v != "full" && v != "on" && v != "off") {
                 return Error::msg("'{}' is not some, full, on or off", v);
             }
             o.psi.use_trigger = v != "off";
             o.psi.trigger.full = v == "full";
             return ok();
         }},
    };
    return table;
}

}  // namespace

Result<void> validate(const PolicyConfig& c) {
    const HostThresholds& h = c.host;
    if (!(h.idle <= h.some_low && h.some_low <= h.some_high && h.some_high <= 100)) {
        return Error::msg(
            "auto balloon: need host_psi_idle ({}) <= host_psi_low ({}) <= host_psi_high ({}) <= 100", h.idle,
            h.some_low, h.some_high);
    }
    if (!(h.idle >= 0 && h.full_high >= 0 && h.full_high <= 100)) {
        return Error("auto balloon: host PSI thresholds must lie in 0..100%");
    }
    const GuestThresholds& g = c.guest;
    if (!(g.available_min_fraction >= 0 && g.available_min_fraction < 1)) {
        return Error("auto balloon: guest_avail_pct must be below 100%");
    }
    for (double rate : {g.major_faults_per_s, g.alloc_stalls_per_s, g.installs_per_s}) {
        if (!(rate >= 0 && std::isfinite(rate))) return Error("auto balloon: rates must be non-negative");
    }
    if (c.step_bytes < c.granularity()) {
        return Error::msg("auto balloon: step {} is below the balloon's granularity {}",
                          format_size(c.step_bytes), format_size(c.granularity()));
    }
    if (c.tick < std::chrono::milliseconds(100)) return Error("auto balloon: tick must be at least 100ms");
    if (c.hysteresis < std::chrono::milliseconds(0))
        return Error("auto balloon: hysteresis must not be negative");
    if (c.stats_max_age < c.tick) return Error("auto balloon: stats_max_age must be at least one tick");
    return ok();
}

bool is_auto_option(std::string_view key) { return setters().contains(key); }

std::vector<std::string_view> auto_option_keys() {
    std::vector<std::string_view> keys;
    for (const auto& [key, setter] : setters()) keys.push_back(key);
    return keys;
}

Result<void> apply_option(AutoBalloonOptions& options, std::string_view key, std::string_view value) {
    auto it = setters().find(key);
    if (it == setters().end()) return Error::msg("unknown auto balloon option '{}'", key);
    VMM_TRY_CTX(it->second(options, value), fmt::format("auto balloon option {}", key));
    return ok();
}

Result<void> validate(const AutoBalloonOptions& options) {
    VMM_TRY(validate(options.policy));
    if (!options.psi.path.empty() && !options.psi.path.starts_with('/')) {
        return Error::msg("auto balloon: PSI path '{}' is not absolute", options.psi.path);
    }
    if (options.psi.use_trigger) VMM_TRY(validate_trigger(options.psi.trigger));
    return ok();
}

}  // namespace vmm::balloon::auto_balloon
