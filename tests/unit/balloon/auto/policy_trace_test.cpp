// Recorded traces (tests/data/auto_balloon, README.md there) replayed through the
// policy. Host PSI, faults, stalls and install rates come from the trace; the
// balloon is simulated: its actual size follows the target at a given rate and
// the guest's available memory shrinks by it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "balloon/auto/policy.h"

using namespace vmm::balloon::auto_balloon;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

constexpr uint64_t MiB = kMiB;
constexpr uint64_t GiB = 1024 * MiB;

struct TraceRow {
    milliseconds time{0};
    PsiSample psi;
    std::optional<uint64_t> available_unballooned;
    std::optional<uint64_t> major_faults;
    std::optional<uint64_t> alloc_stalls;
    std::optional<double> installs_per_s;
};

std::vector<std::string> split_csv(const std::string& line) {
    std::vector<std::string> cells;
    std::stringstream in(line);
    std::string cell;
    while (std::getline(in, cell, ',')) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.emplace_back();
    return cells;
}

template <typename T>
std::optional<T> cell(const std::map<std::string, size_t>& columns, const std::vector<std::string>& cells,
                      const std::string& name) {
    auto it = columns.find(name);
    REQUIRE(it != columns.end());
    const std::string& text = cells.at(it->second);
    if (text.empty()) return std::nullopt;
    T value{};
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    INFO(name << "='" << text << "'");
    REQUIRE((ec == std::errc{} && ptr == text.data() + text.size()));
    return value;
}

std::vector<TraceRow> load_trace(const std::string& name) {
    std::string path = TEST_DATA_DIR;
    path += "/auto_balloon/";
    path += name;
    std::ifstream in(path);
    REQUIRE(in.good());
    std::map<std::string, size_t> columns;
    std::vector<TraceRow> rows;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto cells = split_csv(line);
        if (columns.empty()) {
            for (size_t i = 0; i < cells.size(); ++i) columns[cells[i]] = i;
            continue;
        }
        REQUIRE(cells.size() == columns.size());
        TraceRow row;
        row.time = milliseconds(*cell<int64_t>(columns, cells, "time_s") * 1000);
        auto line_of = [&](const std::string& prefix) {
            return PsiLine{*cell<double>(columns, cells, prefix + "_avg10"),
                           *cell<double>(columns, cells, prefix + "_avg60"),
                           *cell<double>(columns, cells, prefix + "_avg300"),
                           *cell<uint64_t>(columns, cells, prefix + "_total_us")};
        };
        row.psi.some = line_of("some");
        row.psi.full = line_of("full");
        // The PSI ranges Linux reports: a replay of impossible values would prove nothing.
        for (const PsiLine& l : {row.psi.some, *row.psi.full}) {
            REQUIRE((l.avg10 >= 0 && l.avg10 <= 100 && l.avg60 <= 100 && l.avg300 <= 100));
        }
        REQUIRE(row.psi.full->avg10 <= row.psi.some.avg10 + 5);
        if (auto mib = cell<uint64_t>(columns, cells, "guest_avail_unballooned_mib"))
            row.available_unballooned = *mib * MiB;
        row.major_faults = cell<uint64_t>(columns, cells, "major_faults");
        row.alloc_stalls = cell<uint64_t>(columns, cells, "alloc_stalls");
        row.installs_per_s = cell<double>(columns, cells, "installs_per_s");
        rows.push_back(row);
    }
    REQUIRE(rows.size() > 10);
    return rows;
}

struct Step {
    milliseconds time{0};
    Decision decision;
    uint64_t target_before = 0;
    uint64_t actual = 0;  // when the policy ran
    bool guest_pressure = false;
    bool host_pressure = false;
    std::optional<double> major_faults_per_s;
};

struct ReplayOptions {
    PolicyConfig config;
    uint64_t ram = 4 * GiB;
    uint64_t initial_target = 0;
    double balloon_bytes_per_s = 1e9;          // how fast the guest follows the target
    bool silent_guest_resets_balloon = false;  // no statistics: the guest is rebooting
};

std::vector<Step> replay(const std::vector<TraceRow>& rows, const ReplayOptions& o) {
    AutoBalloonPolicy policy = AutoBalloonPolicy::create(o.config).value();
    uint64_t target = o.initial_target;
    uint64_t actual = o.initial_target;
    milliseconds previous = rows.front().time;
    std::vector<Step> steps;
    for (const TraceRow& row : rows) {
        double seconds = std::chrono::duration<double>(row.time - previous).count();
        auto movable = static_cast<uint64_t>(std::min(o.balloon_bytes_per_s * seconds, 1e18));
        actual = actual < target ? std::min(target, actual + movable)
                                 : std::max(target, actual > movable ? actual - movable : 0);
        previous = row.time;

        PolicyInput in;
        in.now = row.time;
        in.host_psi = row.psi;
        in.installs_per_s = row.installs_per_s;
        bool silent = !row.available_unballooned && !row.major_faults && !row.alloc_stalls;
        if (silent && o.silent_guest_resets_balloon) actual = 0;
        if (!silent) {
            GuestStats g;
            if (row.available_unballooned) {
                g.available_bytes =
                    *row.available_unballooned > actual ? *row.available_unballooned - actual : 0;
            }
            g.total_bytes = o.ram - actual;
            g.major_faults = row.major_faults;
            g.alloc_stalls = row.alloc_stalls;
            g.sampled_at = row.time;
            in.guest = g;
        }
        in.target_bytes = target;
        in.actual_bytes = actual;
        in.guest_ram_bytes = o.ram;
        Decision d = policy.decide(in);
        INFO(format_decision_log(d, row.time));
        REQUIRE(d.new_target_bytes <= o.ram - o.config.floor_bytes);
        REQUIRE(d.new_target_bytes % o.config.granularity() == 0);
        steps.push_back(Step{row.time, d, target, actual, policy.status().guest_pressure,
                             policy.status().host_pressure, policy.status().major_faults_per_s});
        target = d.new_target_bytes;
    }
    return steps;
}

const Step& at(const std::vector<Step>& steps, milliseconds t) {
    auto it = std::find_if(steps.begin(), steps.end(), [&](const Step& s) { return s.time == t; });
    REQUIRE(it != steps.end());
    return *it;
}

uint64_t target_after(const std::vector<Step>& steps, milliseconds t) {
    return at(steps, t).decision.new_target_bytes;
}

bool changes_target(const Step& s) { return s.decision.action != Action::none; }

// No inflate for the hysteresis period after any tick that saw guest pressure.
void check_hysteresis(const std::vector<Step>& steps, milliseconds hysteresis) {
    std::optional<milliseconds> last_guest_pressure;
    for (const Step& s : steps) {
        if (s.guest_pressure) last_guest_pressure = s.time;
        if (s.decision.action == Action::inflate && last_guest_pressure) {
            INFO("inflate at " << s.time.count() << " ms, guest pressure at " << last_guest_pressure->count()
                               << " ms");
            CHECK(s.time >= *last_guest_pressure + hysteresis);
        }
    }
}

}  // namespace

TEST_CASE("trace: two VMs in opposite phase", "[auto][trace]") {
    struct Vm {
        const char* trace;
        std::vector<std::pair<int, int>> own_jobs;    // seconds
        std::vector<std::pair<int, int>> other_jobs;  // when the other VM's job makes host pressure
    };
    for (const Vm& vm : {Vm{"two_vm_opposite_phase_a.csv", {{300, 480}}, {{60, 240}, {540, 720}}},
                         Vm{"two_vm_opposite_phase_b.csv", {{60, 240}, {540, 720}}, {{300, 480}}}}) {
        INFO(vm.trace);
        ReplayOptions options;
        options.ram = 8 * GiB;
        auto steps = replay(load_trace(vm.trace), options);

        // While the other VM's job squeezes the host, this VM gives memory: the target
        // rises, one step per tick at most.
        for (auto [start, end] : vm.other_jobs) {
            milliseconds from = std::chrono::seconds(start), to = std::chrono::seconds(start + 90);
            uint64_t inflated = 0;
            for (const Step& s : steps) {
                if (s.time <= from || s.time > to || s.decision.action != Action::inflate) continue;
                CHECK(s.decision.new_target_bytes - s.target_before <= options.config.step_bytes);
                inflated += s.decision.new_target_bytes - s.target_before;
            }
            CHECK(inflated >= 2 * GiB);
            CHECK(target_after(steps, to) > target_after(steps, from));
        }
        // When its own job starts, the target drops within one tick, unless there is
        // nothing to give back.
        for (auto [start, end] : vm.own_jobs) {
            milliseconds t = std::chrono::seconds(start);
            if (target_after(steps, t) == 0) continue;
            const Step& next = at(steps, t + 5s);
            INFO(next.decision.reason);
            CHECK(next.guest_pressure);
            CHECK(
                (next.decision.action == Action::deflate || next.decision.action == Action::cancel_inflate));
            CHECK(next.decision.new_target_bytes < target_after(steps, t));
            // ...and keeps falling while the job grows, never inflating during it.
            for (const Step& s : steps) {
                if (s.time > t && s.time < std::chrono::seconds(end))
                    CHECK(s.decision.action != Action::inflate);
            }
        }
        check_hysteresis(steps, options.config.hysteresis);
        CHECK(std::count_if(steps.begin(), steps.end(), changes_target) > 10);
    }
}

TEST_CASE("trace: a guest that reboots under host pressure", "[auto][trace]") {
    ReplayOptions options;
    options.silent_guest_resets_balloon = true;
    auto steps = replay(load_trace("guest_reboot.csv"), options);
    CHECK(target_after(steps, 195s) >= 2 * GiB);  // inflated before the reboot
    for (const Step& s : steps) {
        INFO(s.time.count() << " ms: " << s.decision.reason);
        if (s.time >= 200s && s.time < 245s) {
            // Blind: neither an inflate nor a deflate; the target waits for the guest.
            CHECK(s.decision.action == Action::none);
            CHECK(s.decision.reason.find("not inflating blind") != std::string::npos);
        }
        if (s.time >= 245s) {
            // Counters that restarted from zero are a new baseline, not guest pressure.
            CHECK_FALSE(s.guest_pressure);
            CHECK(s.decision.action != Action::deflate);
            CHECK(s.decision.action != Action::cancel_inflate);
            if (s.major_faults_per_s) CHECK(*s.major_faults_per_s < 10);
        }
    }
    CHECK_FALSE(at(steps, 245s).major_faults_per_s.has_value());
    CHECK(at(steps, 250s).major_faults_per_s.has_value());
}

TEST_CASE("trace: HyperAlloc install burst under host pressure", "[auto][trace]") {
    ReplayOptions options;
    options.config.kind = BalloonKind::hyperalloc;
    options.ram = 16 * GiB;
    auto rows = load_trace("hyperalloc_install_burst.csv");
    auto steps = replay(rows, options);
    const double threshold = options.config.guest.installs_per_s;

    std::optional<milliseconds> burst_start, burst_end;
    for (const TraceRow& r : rows) {
        if (r.installs_per_s.value_or(0) > threshold) {
            if (!burst_start) burst_start = r.time;
            burst_end = r.time;
        }
    }
    REQUIRE(burst_start);
    milliseconds quiet_until = *burst_end + options.config.hysteresis;

    bool inflated_before_burst = false;
    bool inflated_after_window = false;
    for (size_t i = 0; i < steps.size(); ++i) {
        const Step& s = steps[i];
        INFO(s.time.count() << " ms: " << s.decision.reason);
        REQUIRE(s.decision.soft_reclaim_bytes.has_value());
        uint64_t soft = *s.decision.soft_reclaim_bytes;
        if (s.time < *burst_start) {
            CHECK(soft == (s.host_pressure ? kSoftReclaimUnlimited : options.config.soft_reclaim_calm_bytes));
            inflated_before_burst |= s.decision.action == Action::inflate;
        } else if (s.time == *burst_start) {
            // The burst wins at once: the hard target falls and soft reclaim stops.
            CHECK(s.decision.action == Action::deflate);
            CHECK(s.decision.new_target_bytes < s.target_before);
            CHECK(soft == 0u);
        } else if (s.time < quiet_until) {
            CHECK(soft == 0u);
            CHECK(s.decision.action != Action::inflate);
        } else {
            CHECK(soft == (s.host_pressure ? kSoftReclaimUnlimited : options.config.soft_reclaim_calm_bytes));
            inflated_after_window |= s.decision.action == Action::inflate;
        }
    }
    CHECK(inflated_before_burst);
    CHECK(inflated_after_window);  // the host is still under pressure after the window
    CHECK(target_after(steps, steps.back().time) % (2 * MiB) == 0);
}

TEST_CASE("trace: an idle host deflates slowly, and only while idle", "[auto][trace]") {
    auto rows = load_trace("host_idle.csv");
    ReplayOptions options;
    options.initial_target = 2 * GiB;
    SECTION("idle deflation off (the default): hold") {
        auto steps = replay(rows, options);
        for (const Step& s : steps) CHECK(s.decision.new_target_bytes == 2 * GiB);
    }
    SECTION("idle_step=32M") {
        options.config.idle_deflate_bytes = 32 * MiB;
        auto steps = replay(rows, options);
        bool held_while_busy = false;
        for (size_t i = 0; i < steps.size(); ++i) {
            const Step& s = steps[i];
            const PsiLine& some = rows[i].psi.some;
            bool idle = some.avg10 <= options.config.host.idle && some.avg60 <= options.config.host.idle;
            INFO(s.time.count() << " ms: " << s.decision.reason);
            if (s.decision.action == Action::deflate) {
                CHECK(idle);
                CHECK(s.target_before - s.decision.new_target_bytes ==
                      std::min<uint64_t>(32 * MiB, s.target_before));
            } else {
                CHECK(s.decision.action == Action::none);
                held_while_busy |= !idle && s.target_before > 0;
            }
        }
        CHECK(held_while_busy);
        CHECK(target_after(steps, steps.back().time) == 0);
    }
}

TEST_CASE("trace: guest pressure cancels a slow inflate", "[auto][trace]") {
    ReplayOptions options;
    options.balloon_bytes_per_s = 20.0 * MiB;  // a guest that inflates 100 MiB per tick
    auto steps = replay(load_trace("inflate_cancel.csv"), options);
    auto first = std::find_if(steps.begin(), steps.end(), [](const Step& s) { return s.guest_pressure; });
    REQUIRE(first != steps.end());
    INFO(first->decision.reason);
    CHECK(first->time <= 65s);  // the job starts at 60 s: the first tick after it
    CHECK(first->decision.action == Action::cancel_inflate);
    CHECK(first->target_before > first->actual);
    CHECK(first->decision.new_target_bytes < first->actual);
    // The host stays under pressure throughout: inflation resumes, but only a full
    // hysteresis period after the guest's pressure ended.
    milliseconds last_pressure = first->time;
    for (const Step& s : steps) {
        if (s.guest_pressure) last_pressure = s.time;
    }
    bool resumed = false;
    for (auto it = first; it != steps.end(); ++it) {
        if (it->time < last_pressure + options.config.hysteresis) {
            CHECK(it->decision.new_target_bytes <= first->actual);
        } else {
            resumed |= it->decision.action == Action::inflate;
        }
    }
    CHECK(resumed);
    check_hysteresis(steps, options.config.hysteresis);
}
