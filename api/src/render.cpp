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
    if (b.model == BalloonModel::virtio) {
        return {{"model", "virtio"},
                {"size", b.size},
                {"deflate_on_oom", b.deflate_on_oom},
                {"free_page_reporting", b.free_page_reporting},
                {"stats_polling_interval_s", b.stats_polling_interval_s}};
    }
    return {{"model", "hyperalloc"},
            {"size", b.size},
            {"auto_mode", b.auto_mode},
            {"auto_period_ms", b.auto_period_ms},
            {"auto_limit_bytes", b.auto_limit_bytes},
            {"shrink_pagecache", b.shrink_pagecache},
            {"install_path", b.install_path == InstallPath::worker ? "worker" : "vcpu"}};
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
            {"auto_reclaimed_bytes", h.auto_reclaimed_bytes},
            {"discard_calls", h.discard_calls},
            {"bad_records", h.bad_records},
            {"pagecache_shrink_pending", h.pagecache_shrink_pending},
            {"zones", std::move(zones)},
            {"host_rss_bytes", optional_json(h.host_rss_bytes)}};
}

json balloon_info_json(const BalloonInfo& b) {
    json j = {{"kind", b.kind}, {"target_bytes", b.target_bytes}, {"actual_bytes", b.actual_bytes}};
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
                return json_reply(j);
            },
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
