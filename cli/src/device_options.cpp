#include "cli/device_options.h"

#include <arpa/inet.h>

#include <algorithm>
#include <regex>

#include "balloon/auto/policy.h"
#include "cli/option_parser.h"

namespace vmm::cli {
namespace {

Result<std::string> ipv4(const std::string& text, const char* key) {
    in_addr addr{};
    if (::inet_pton(AF_INET, text.c_str(), &addr) != 1) return Error::msg("{}='{}' is not an IPv4 address", key, text);
    return text;
}

bool valid_mac(const std::string& mac) {
    static const std::regex pattern("^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$");
    if (!std::regex_match(mac, pattern)) return false;
    // A multicast address (bit 0 of the first octet) cannot be a NIC's address.
    return (std::stoul(mac.substr(0, 2), nullptr, 16) & 1) == 0;
}

}  // namespace

Result<DiskConfig> parse_disk(std::string_view value) {
    OptionParser parser;
    parser.add("path").add("readonly").add("direct").add("id");
    VMM_TRY(parser.parse(value));
    DiskConfig disk;
    auto path = VMM_TRY(parser.get_string("path"));
    if (!path || path->empty()) return Error::msg("path= is required");
    disk.path = *path;
    disk.readonly = VMM_TRY(parser.get_bool("readonly")).value_or(false);
    disk.direct = VMM_TRY(parser.get_bool("direct")).value_or(false);
    disk.id = VMM_TRY(parser.get_string("id")).value_or("");
    return disk;
}

Result<NetConfig> parse_net(std::string_view value) {
    OptionParser parser;
    parser.add("tap").add("ip").add("mask").add("mac").add("id");
    VMM_TRY(parser.parse(value));
    NetConfig net;
    auto tap = VMM_TRY(parser.get_string("tap"));
    if (!tap || tap->empty()) return Error::msg("tap= is required");
    // IFNAMSIZ is 16 including the NUL.
    if (tap->size() > 15) return Error::msg("tap name '{}' is longer than 15 characters", *tap);
    net.tap = *tap;
    if (auto ip = VMM_TRY(parser.get_string("ip"))) net.ip = VMM_TRY(ipv4(*ip, "ip"));
    if (auto mask = VMM_TRY(parser.get_string("mask"))) net.mask = VMM_TRY(ipv4(*mask, "mask"));
    if (net.mask && !net.ip) return Error::msg("mask= needs ip=");
    if (auto mac = VMM_TRY(parser.get_string("mac"))) {
        if (!valid_mac(*mac)) return Error::msg("mac='{}' is not a unicast MAC address (aa:bb:cc:dd:ee:ff)", *mac);
        net.mac = *mac;
    }
    net.id = VMM_TRY(parser.get_string("id")).value_or("");
    return net;
}

Result<RngConfig> parse_rng(std::string_view value) {
    RngConfig rng;
    if (value.empty()) return rng;
    OptionParser parser;
    parser.add("src");
    VMM_TRY(parser.parse(value));
    if (auto src = VMM_TRY(parser.get_string("src"))) {
        if (src->empty()) return Error::msg("src= needs a path");
        rng.src = *src;
    }
    return rng;
}

Result<ConsoleConfig> parse_console(std::string_view value) {
    OptionParser parser;
    parser.add_valueless("off").add_valueless("null").add_valueless("tty").add("file");
    VMM_TRY(parser.parse(value));
    int modes = 0;
    for (std::string_view mode : {"off", "null", "tty", "file"}) modes += parser.is_set(mode) ? 1 : 0;
    if (modes != 1) return Error::msg("expected exactly one of off|null|tty|file=PATH, got '{}'", value);
    ConsoleConfig console;
    if (parser.is_set("off")) console.mode = ConsoleMode::off;
    if (parser.is_set("null")) console.mode = ConsoleMode::null;
    if (parser.is_set("tty")) console.mode = ConsoleMode::tty;
    if (auto file = VMM_TRY(parser.get_string("file"))) {
        if (file->empty()) return Error::msg("file= needs a path");
        console.mode = ConsoleMode::file;
        console.file = *file;
    }
    return console;
}

namespace {

constexpr uint64_t kHyperAllocFrame = 2ull << 20;  // HyperAlloc reclaims whole 2 MiB frames
constexpr uint32_t kMinPeriodMs = 10;
constexpr uint32_t kMaxPeriodMs = 3'600'000;

// "500ms", "5s", "2m": a unit is required so that "period=5" is not silently 5 ms.
Result<uint32_t> parse_duration_ms(std::string_view text, const char* key) {
    size_t digits = text.find_first_not_of("0123456789");
    if (digits == 0 || digits == std::string_view::npos) {
        return Error::msg("{}='{}' needs a number and a unit (ms, s or m), e.g. 5s or 500ms", key, text);
    }
    std::string_view unit = text.substr(digits);
    uint64_t scale = 0;
    if (unit == "ms") scale = 1;
    if (unit == "s") scale = 1000;
    if (unit == "m") scale = 60'000;
    if (scale == 0) return Error::msg("{}='{}': unknown unit '{}' (ms, s or m)", key, text, unit);
    auto number = parse_u64(text.substr(0, digits));
    if (!number || *number > kMaxPeriodMs / scale) {
        return Error::msg("{}='{}' is longer than one hour", key, text);
    }
    return static_cast<uint32_t>(*number * scale);
}

Result<BalloonModel> balloon_model(const OptionParser& parser) {
    auto model = VMM_TRY(parser.get_string("model"));
    if (!model || *model == "hyperalloc") return BalloonModel::hyperalloc;
    if (*model == "virtio") return BalloonModel::virtio;
    return Error::msg("model='{}' is not one of hyperalloc|virtio", *model);
}

Result<void> parse_virtio_balloon_keys(const OptionParser& parser, BalloonConfig& balloon) {
    for (const char* key : {"period", "auto_limit", "shrink_pagecache", "install"}) {
        if (parser.is_set(key)) return Error::msg("{} applies to model=hyperalloc", key);
    }
    if (balloon.size % 4096 != 0) return Error::msg("size {} is not a multiple of 4 KiB", format_size(balloon.size));
    balloon.deflate_on_oom = VMM_TRY(parser.get_bool("deflate_on_oom")).value_or(false);
    balloon.free_page_reporting = VMM_TRY(parser.get_bool("free_page_reporting")).value_or(false);
    balloon.allow_vfio = VMM_TRY(parser.get_bool("allow_vfio")).value_or(false);
    if (auto interval = VMM_TRY(parser.get_u64("stats_polling_interval_s"))) {
        if (*interval > 3600) return Error::msg("stats_polling_interval_s={} is above 3600", *interval);
        balloon.stats_polling_interval_s = static_cast<uint32_t>(*interval);
    }
    return ok();
}

Result<void> parse_hyperalloc_keys(const OptionParser& parser, BalloonConfig& balloon) {
    for (const char* key : {"deflate_on_oom", "free_page_reporting", "stats_polling_interval_s", "allow_vfio"}) {
        if (parser.is_set(key)) return Error::msg("{} applies to model=virtio", key);
    }
    if (balloon.size % kHyperAllocFrame != 0) {
        return Error::msg("size {} is not a multiple of 2 MiB (HyperAlloc reclaims 2 MiB frames)",
                          format_size(balloon.size));
    }
    // auto=on: the controller, and the device's own soft-reclaim passes it rations.
    balloon.auto_mode = balloon.auto_balloon.has_value();
    if (auto period = VMM_TRY(parser.get_string("period"))) {
        balloon.auto_period_ms = VMM_TRY(parse_duration_ms(*period, "period"));
        if (balloon.auto_period_ms < kMinPeriodMs) {
            return Error::msg("period={} is shorter than {} ms", *period, kMinPeriodMs);
        }
    }
    if (auto limit = VMM_TRY(parser.get_size("auto_limit"))) {
        if (!balloon.auto_mode) return Error::msg("auto_limit= needs auto=on");
        if (*limit % kHyperAllocFrame != 0) {
            return Error::msg("auto_limit {} is not a multiple of 2 MiB", format_size(*limit));
        }
        balloon.auto_limit_bytes = *limit;
    }
    balloon.shrink_pagecache = VMM_TRY(parser.get_bool("shrink_pagecache")).value_or(true);
    if (auto install = VMM_TRY(parser.get_string("install"))) {
        if (*install == "vcpu") {
            balloon.install_path = InstallPath::vcpu;
        } else if (*install == "worker") {
            balloon.install_path = InstallPath::worker;
        } else {
            return Error::msg("install='{}' is not one of vcpu|worker", *install);
        }
    }
    return ok();
}

namespace ab = balloon::auto_balloon;

// Default statistics period with auto=on and model=virtio: the policy needs fresh
// guest statistics (the default tick is 5 s).
constexpr uint32_t kAutoStatsIntervalS = 2;

// The virtio-balloon's controller reads the guest's statistics: the queue must be on
// and polled at least once a tick, and a report must stay fresh for two polls.
Result<void> check_virtio_auto(BalloonConfig& balloon, bool interval_given) {
    const ab::PolicyConfig& policy = balloon.auto_balloon->policy;
    if (!interval_given) balloon.stats_polling_interval_s = kAutoStatsIntervalS;
    uint64_t interval_ms = uint64_t{balloon.stats_polling_interval_s} * 1000;
    if (interval_ms == 0) {
        return Error::msg("auto=on with model=virtio needs guest statistics: stats_polling_interval_s must not be 0");
    }
    if (interval_ms > static_cast<uint64_t>(policy.tick.count())) {
        return Error::msg("stats_polling_interval_s={} is longer than the auto-balloon tick ({} ms)",
                          balloon.stats_polling_interval_s, policy.tick.count());
    }
    if (static_cast<uint64_t>(policy.stats_max_age.count()) < 2 * interval_ms) {
        return Error::msg("stats_max_age ({} ms) must be at least twice stats_polling_interval_s={}",
                          policy.stats_max_age.count(), balloon.stats_polling_interval_s);
    }
    return ok();
}

// HyperAlloc: soft_reclaim= (policy) and auto_limit= (device) both name the most an
// auto pass takes while nobody is under pressure; without either the device's
// default holds (no limit, as auto mode without the controller).
Result<void> set_hyperalloc_soft_reclaim(const OptionParser& parser, BalloonConfig& balloon) {
    ab::PolicyConfig& policy = balloon.auto_balloon->policy;
    bool soft_given = parser.is_set("soft_reclaim");
    if (soft_given && parser.is_set("auto_limit")) {
        return Error::msg("soft_reclaim= and auto_limit= set the same limit; give one of them");
    }
    if (!soft_given) {
        policy.soft_reclaim_calm_bytes =
            balloon.auto_limit_bytes == 0 ? ab::kSoftReclaimUnlimited : balloon.auto_limit_bytes;
    }
    return ok();
}

// The policy keys (balloon/auto/policy_config.h): only with auto=on. `ram` is the
// guest memory size.
Result<void> parse_auto_keys(const OptionParser& parser, BalloonConfig& balloon, uint64_t ram) {
    bool on = VMM_TRY(parser.get_bool("auto")).value_or(false);
    std::vector<std::string_view> given;
    for (std::string_view key : ab::auto_option_keys()) {
        if (parser.is_set(key)) given.push_back(key);
    }
    if (!on) {
        if (!given.empty()) return Error::msg("{}= is an auto-balloon option and needs auto=on", given.front());
        return ok();
    }
    ab::AutoBalloonOptions options;
    bool hyperalloc = balloon.model == BalloonModel::hyperalloc;
    options.policy.kind = hyperalloc ? ab::BalloonKind::hyperalloc : ab::BalloonKind::virtio_balloon;
    // The policy's 512 MiB floor would leave a small guest nothing to give (and undo
    // any size= or resize): a quarter of its RAM at most, in whole balloon units.
    uint64_t quarter = ram / 4 / options.policy.granularity() * options.policy.granularity();
    options.policy.floor_bytes = std::min(options.policy.floor_bytes, quarter);
    if (hyperalloc) {
        // A HyperAlloc guest reports free frames, not MemAvailable: one that uses all
        // its memory is not short of it until it re-installs frames (install_rate).
        // Its free memory still bounds how far an inflate goes.
        options.policy.guest.available_min_fraction = 0;
        options.policy.guest.available_min_bytes = 0;
    }
    for (std::string_view key : given) {
        if (!hyperalloc && (key == "soft_reclaim" || key == "install_rate")) {
            return Error::msg("{} applies to model=hyperalloc", key);
        }
        auto value = VMM_TRY(parser.get_string(key));
        VMM_TRY(ab::apply_option(options, key, value.value_or("")));
    }
    VMM_TRY(ab::validate(options));
    if (options.policy.floor_bytes >= ram) {
        return Error::msg("floor {} must be smaller than guest memory ({})", format_size(options.policy.floor_bytes),
                          format_size(ram));
    }
    balloon.auto_balloon = std::move(options);
    return ok();
}

}  // namespace

Result<VfioDeviceConfig> parse_device(std::string_view value) {
    OptionParser parser;
    parser.add("path").add("id").add("iommu").add("pci_segment");
    VMM_TRY(parser.parse(value));
    for (const char* key : {"iommu", "pci_segment"}) {
        if (parser.is_set(key)) return Error::msg("{}= is not supported (no virtual IOMMU, one PCI segment)", key);
    }
    VfioDeviceConfig device;
    auto path = VMM_TRY(parser.get_string("path"));
    if (!path || path->empty()) return Error::msg("path= is required");
    device.path = *path;
    device.id = VMM_TRY(parser.get_string("id")).value_or("");
    return device;
}

Result<BalloonConfig> parse_balloon(std::string_view value, uint64_t ram) {
    OptionParser parser;
    parser.add("model").add("size");
    parser.add("deflate_on_oom").add("free_page_reporting").add("stats_polling_interval_s").add("allow_vfio");
    parser.add("auto").add("period").add("auto_limit").add("shrink_pagecache").add("install");
    for (std::string_view key : ab::auto_option_keys()) parser.add(std::string(key));
    VMM_TRY(parser.parse(value));
    BalloonConfig balloon;
    balloon.model = VMM_TRY(balloon_model(parser));
    auto size = VMM_TRY(parser.get_size("size"));
    // A HyperAlloc balloon may start empty (auto=on alone); a virtio-balloon needs its target.
    if (!size && balloon.model == BalloonModel::virtio) return Error::msg("size= is required with model=virtio");
    balloon.size = size.value_or(0);
    if (balloon.size >= ram) {
        return Error::msg("size {} must be smaller than guest memory ({})", format_size(balloon.size),
                          format_size(ram));
    }
    VMM_TRY(parse_auto_keys(parser, balloon, ram));
    if (balloon.model == BalloonModel::virtio) {
        VMM_TRY(parse_virtio_balloon_keys(parser, balloon));
        if (balloon.auto_balloon) VMM_TRY(check_virtio_auto(balloon, parser.is_set("stats_polling_interval_s")));
    } else {
        VMM_TRY(parse_hyperalloc_keys(parser, balloon));
        if (balloon.auto_balloon) VMM_TRY(set_hyperalloc_soft_reclaim(parser, balloon));
    }
    return balloon;
}

}  // namespace vmm::cli
