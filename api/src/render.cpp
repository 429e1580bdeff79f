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
    if (c.balloon) {
        j["balloon"] = {{"size", c.balloon->size},
                        {"deflate_on_oom", c.balloon->deflate_on_oom},
                        {"free_page_reporting", c.balloon->free_page_reporting},
                        {"stats_polling_interval_s", c.balloon->stats_polling_interval_s}};
    }
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

json balloon_info_json(const BalloonInfo& b) {
    json j = {{"kind", b.kind},
              {"target_bytes", b.target_bytes},
              {"actual_bytes", b.actual_bytes},
              {"deflate_on_oom", b.deflate_on_oom},
              {"free_page_reporting", b.free_page_reporting},
              {"stats_polling_interval_s", b.stats_polling_interval_s}};
    if (b.statistics) {
        json stats = json::object();
        add_statistics(stats, *b.statistics);
        j["statistics"] = std::move(stats);
    }
    return j;
}

// Firecracker's BalloonStats: sizes in pages and MiB, then the guest's tags.
json balloon_statistics_json(const BalloonInfo& b) {
    json j = {{"target_pages", b.target_bytes / kBalloonPageSize},
              {"actual_pages", b.actual_bytes / kBalloonPageSize},
              {"target_mib", b.target_bytes >> 20},
              {"actual_mib", b.actual_bytes >> 20}};
    if (b.statistics) add_statistics(j, *b.statistics);
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
