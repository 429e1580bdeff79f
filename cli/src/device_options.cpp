#include "cli/device_options.h"

#include <arpa/inet.h>

#include <regex>

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

Result<BalloonConfig> parse_balloon(std::string_view value, uint64_t ram) {
    OptionParser parser;
    parser.add("size").add("deflate_on_oom").add("free_page_reporting").add("stats_polling_interval_s");
    VMM_TRY(parser.parse(value));
    BalloonConfig balloon;
    auto size = VMM_TRY(parser.get_size("size"));
    if (!size) return Error::msg("size= is required");
    if (*size % 4096 != 0) return Error::msg("size {} is not a multiple of 4 KiB", format_size(*size));
    if (*size >= ram) {
        return Error::msg("size {} must be smaller than guest memory ({})", format_size(*size), format_size(ram));
    }
    balloon.size = *size;
    balloon.deflate_on_oom = VMM_TRY(parser.get_bool("deflate_on_oom")).value_or(false);
    balloon.free_page_reporting = VMM_TRY(parser.get_bool("free_page_reporting")).value_or(false);
    if (auto interval = VMM_TRY(parser.get_u64("stats_polling_interval_s"))) {
        if (*interval > 3600) return Error::msg("stats_polling_interval_s={} is above 3600", *interval);
        balloon.stats_polling_interval_s = static_cast<uint32_t>(*interval);
    }
    return balloon;
}

}  // namespace vmm::cli
