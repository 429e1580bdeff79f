// VmReply -> HTTP reply with JSON (see api/routes.h). Field names follow
// cloud-hypervisor's VmInfo/VmConfig and Firecracker's BalloonStats.
#include <chrono>

#include <nlohmann/json.hpp>

#include "api/routes.h"

namespace vmm::api {
namespace {

using nlohmann::json;

template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

const char* console_mode_name(ConsoleMode mode) {
    switch (mode) {
        case ConsoleMode::off: return "Off";
        case ConsoleMode::null: return "Null";
        case ConsoleMode::tty: return "Tty";
        case ConsoleMode::file: return "File";
    }
    return "Off";
}

json console_json(const ConsoleConfig& c) {
    json j = {{"mode", console_mode_name(c.mode)}};
    if (c.mode == ConsoleMode::file) j["file"] = c.file;
    return j;
}

// Each model shows only its own keys (--balloon rejects the other model's).
json balloon_config_json(const BalloonConfig& b) {
    json j;
    if (b.model == BalloonModel::virtio) {
        j = {{"model", "virtio"},
             {"size", b.size},
             {"deflate_on_oom", b.deflate_on_oom},
             {"free_page_reporting", b.free_page_reporting},
             {"stats_polling_interval_s", b.stats_polling_interval_s},
             {"allow_vfio", b.allow_vfio}};
    } else {
        j = {{"model", "hyperalloc"},
             {"size", b.size},
             {"auto_mode", b.auto_mode},
             {"auto_period_ms", b.auto_period_ms},
             {"auto_limit_bytes", b.auto_limit_bytes},
             {"shrink_pagecache", b.shrink_pagecache},
             {"install_path", b.install_path == InstallPath::worker ? "worker" : "vcpu"}};
    }
    j["auto_balloon"] = b.auto_balloon.has_value();
    return j;
}

json config_json(const VmConfig& c) {
    json j;
    j["cpus"] = {{"boot_vcpus", c.cpus.boot}, {"max_vcpus", c.cpus.boot}};
    j["memory"] = {{"size", c.memory.size},
                   {"shared", c.memory.shared},
                   {"thp", c.memory.thp},
                   {"prefault", c.memory.prefault}};
    j["payload"] = {{"kernel", c.payload.kernel}, {"cmdline", c.payload.cmdline}};
    if (c.payload.initramfs) j["payload"]["initramfs"] = *c.payload.initramfs;
    j["disks"] = json::array();
    for (const auto& d : c.disks) {
        j["disks"].push_back({{"path", d.path}, {"readonly", d.readonly}, {"direct", d.direct}, {"id", d.id}});
    }
    j["net"] = json::array();
    for (const auto& n : c.nets) {
        json net = {{"tap", n.tap}, {"id", n.id}};
        if (n.ip) net["ip"] = *n.ip;
        if (n.mask) net["mask"] = *n.mask;
        if (n.mac) net["mac"] = *n.mac;
        j["net"].push_back(std::move(net));
    }
    if (c.rng) j["rng"] = {{"src", c.rng->src}};
    if (c.balloon) j["balloon"] = balloon_config_json(*c.balloon);
    // cloud-hypervisor's "devices" (VFIO), kept in step with hot-add and remove.
    j["devices"] = json::array();
    for (const auto& d : c.devices) j["devices"].push_back({{"path", d.path}, {"id", d.id}});
    j["seccomp"] = c.seccomp == SeccompMode::off ? "false" : c.seccomp == SeccompMode::log ? "log" : "true";
    j["serial"] = console_json(c.serial);
    j["console"] = console_json(c.console);
    return j;
}

int64_t unix_seconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

void add_statistics(json& j, const BalloonStatistics& stats) {
    for (const auto& [name, value] : stats.values) j[name] = value;
    j["statistics_updated_at"] = unix_seconds(stats.updated_at);
}

json optional_json(const std::optional<uint64_t>& value) { return value ? json(*value) : json(nullptr); }

json hyperalloc_json(const HyperAllocInfo& h) {
    json zones = json::array();
    for (const auto& z : h.zones) zones.push_back({{"type", z.type}, {"start_pfn", z.start_pfn}, {"pages", z.pages}});
    return {{"target_bytes", h.target_bytes},
            {"hard_reclaimed_bytes", h.hard_reclaimed_bytes},
            {"soft_reclaimed_bytes", h.soft_reclaimed_bytes},
            {"guest_free_bytes", optional_json(h.guest_free_bytes)},
            {"page_cache_bytes", optional_json(h.page_cache_bytes)},
            {"installs", h.installs},
            {"install_requests", h.install_requests},
            {"install_errors", h.install_errors},
            {"installs_per_s", h.installs_per_s},
            {"auto_mode", h.auto_mode},
            {"auto_period_ms", h.auto_period_ms},
            {"auto_limit_bytes", h.auto_limit_bytes},
            {"auto_paused", h.auto_paused},
            {"auto_reclaimed_bytes", h.auto_reclaimed_bytes},
            {"discard_calls", h.discard_calls},
            {"bad_records", h.bad_records},
            {"pagecache_shrink_pending", h.pagecache_shrink_pending},
            {"zones", std::move(zones)},
            {"host_rss_bytes", optional_json(h.host_rss_bytes)}};
}

json optional_json(const std::optional<double>& value) { return value ? json(*value) : json(nullptr); }

json psi_json(const PsiInfo& p) {
    json j = {{"some", {{"avg10", p.some_avg10}, {"avg60", p.some_avg60}, {"avg300", p.some_avg300},
                        {"total_us", p.some_total_us}}}};
    if (p.full_avg10) {
        j["full"] = {{"avg10", *p.full_avg10},
                     {"avg60", p.full_avg60.value_or(0)},
                     {"avg300", p.full_avg300.value_or(0)},
                     {"total_us", p.full_total_us.value_or(0)}};
    }
    return j;
}

json decision_json(const AutoBalloonDecisionInfo& d) {
    json j = {{"action", d.action}, {"target_bytes", d.target_bytes}, {"reason", d.reason}, {"at_s", d.at_s}};
    if (d.soft_reclaim_bytes) {
        // UINT64_MAX is "no limit" inside the VMM; JSON says it in words.
        uint64_t soft = *d.soft_reclaim_bytes;
        j["soft_reclaim"] = soft == 0 ? "stopped" : soft == UINT64_MAX ? "unlimited" : "limited";
        if (soft != 0 && soft != UINT64_MAX) j["soft_reclaim_bytes"] = soft;
    }
    return j;
}

// In vm.info's balloon block always ({"enabled": false} without auto=on).
json auto_balloon_json(const std::optional<AutoBalloonInfo>& info) {
    if (!info) return {{"enabled", false}};
    const AutoBalloonInfo& a = *info;
    json j = {{"enabled", true},
              {"psi_path", a.psi_path},
              {"psi_mode", a.psi_mode},
              {"psi_mode_reason", a.psi_mode_reason},
              {"last_psi", a.last_psi ? psi_json(*a.last_psi) : json(nullptr)},
              {"last_decision", a.last_decision ? decision_json(*a.last_decision) : json(nullptr)},
              {"last_action", a.last_action ? decision_json(*a.last_action) : json(nullptr)},
              {"ticks", a.ticks},
              {"psi_events", a.psi_events},
              {"inflates", a.inflates},
              {"deflates", a.deflates},
              {"cancels", a.cancels},
              {"apply_errors", a.apply_errors},
              {"in_hysteresis", a.in_hysteresis},
              {"in_hysteresis_until_s", optional_json(a.in_hysteresis_until_s)},
              {"host_pressure", a.host_pressure},
              {"guest_pressure", a.guest_pressure},
              {"major_faults_per_s", optional_json(a.major_faults_per_s)},
              {"alloc_stalls_per_s", optional_json(a.alloc_stalls_per_s)},
              {"installs_per_s", optional_json(a.installs_per_s)},
              {"guest_available_bytes", optional_json(a.guest_available_bytes)},
              {"tick_ms", a.tick_ms},
              {"hysteresis_ms", a.hysteresis_ms},
              {"step_bytes", a.step_bytes},
              {"floor_bytes", a.floor_bytes}};
    if (a.psi_error) j["psi_error"] = *a.psi_error;
    return j;
}

json balloon_info_json(const BalloonInfo& b) {
    json j = {{"kind", b.kind}, {"target_bytes", b.target_bytes}, {"actual_bytes", b.actual_bytes}};
    j["auto_balloon"] = auto_balloon_json(b.auto_balloon);
    if (b.hyperalloc) {
        j["hyperalloc"] = hyperalloc_json(*b.hyperalloc);
        return j;
    }
    j["deflate_on_oom"] = b.deflate_on_oom;
    j["free_page_reporting"] = b.free_page_reporting;
    j["stats_polling_interval_s"] = b.stats_polling_interval_s;
    if (b.statistics) {
        json stats = json::object();
        add_statistics(stats, *b.statistics);
        j["statistics"] = std::move(stats);
    }
    return j;
}

// Firecracker's BalloonStats: sizes in pages and MiB, then the guest's tags (or,
// for HyperAlloc, which has no statistics queue, the device's own block).
json balloon_statistics_json(const BalloonInfo& b) {
    json j = {{"target_pages", b.target_bytes / kBalloonPageSize},
              {"actual_pages", b.actual_bytes / kBalloonPageSize},
              {"target_mib", b.target_bytes >> 20},
              {"actual_mib", b.actual_bytes >> 20}};
    if (b.statistics) add_statistics(j, *b.statistics);
    if (b.hyperalloc) j["hyperalloc"] = hyperalloc_json(*b.hyperalloc);
    // Only with auto=on, so that Firecracker's shape stays as it is otherwise.
    if (b.auto_balloon) j["auto_balloon"] = auto_balloon_json(b.auto_balloon);
    return j;
}

int status_for(RequestError::Kind kind) {
    switch (kind) {
        case RequestError::Kind::bad_request: return 400;
        case RequestError::Kind::not_found: return 404;
        case RequestError::Kind::wrong_state: return 409;
        case RequestError::Kind::internal: return 500;
    }
    return 500;
}

HttpReply json_reply(const json& j) {
    // Paths in the config may hold any bytes; never throw on invalid UTF-8.
    return HttpReply{200, j.dump(-1, ' ', false, json::error_handler_t::replace), {}, false};
}

}  // namespace

HttpReply render_reply(const VmReply& reply) {
    return std::visit(
        Overloaded{
            [](const Empty&) { return HttpReply{204, {}, {}, false}; },
            [](const PingInfo& p) {
                return json_reply({{"build_version", p.version},
                                   {"version", p.version},
                                   {"pid", p.pid},
                                   {"features", p.features}});
            },
            [](const VmInfo& info) {
                json j = {{"config", config_json(info.config)},
                          {"state", to_string(info.state)},
                          {"memory_actual_size", info.memory_actual_size}};
                if (info.balloon) j["balloon"] = balloon_info_json(*info.balloon);
                json devices = json::array();
                for (const AssignedDevice& d : info.devices)
                    devices.push_back({{"id", d.id}, {"bdf", d.bdf}, {"path", d.path}});
                j["devices"] = devices;
                return json_reply(j);
            },
            [](const AssignedDevice& d) { return json_reply({{"id", d.id}, {"bdf", d.bdf}}); },
            [](const DeviceCounters& counters) {
                json j = json::object();
                for (const auto& [id, values] : counters) j[id] = values;
                return json_reply(j);
            },
            [](const BalloonInfo& b) { return json_reply(balloon_statistics_json(b)); },
            [](const RequestError& e) { return error_reply(status_for(e.kind), e.message); },
        },
        reply);
}

}  // namespace vmm::api
