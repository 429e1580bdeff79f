#include "balloon/auto/psi.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <vector>

namespace vmm::balloon::auto_balloon {

namespace {

std::vector<std::string_view> split(std::string_view text, char sep) {
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find(sep, start);
        if (end == std::string_view::npos) end = text.size();
        parts.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return parts;
}

Result<double> parse_percent(std::string_view key, std::string_view value) {
    double v = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc{} || ptr != value.data() + value.size() || !std::isfinite(v) || v < 0 || v > 100) {
        return Error::msg("{}='{}' is not a percentage", key, value);
    }
    return v;
}

// The keys of a PSI line, in the kernel's order; index 3 is the µs counter.
constexpr std::array<std::string_view, 4> kKeys = {"avg10", "avg60", "avg300", "total"};

Result<PsiLine> parse_line(std::string_view line) {
    PsiLine out;
    std::array<bool, kKeys.size()> seen{};
    auto tokens = split(line, ' ');
    for (size_t i = 1; i < tokens.size(); ++i) {
        std::string_view token = tokens[i];
        size_t eq = token.find('=');
        if (eq == std::string_view::npos || eq == 0) return Error::msg("'{}' is not key=value", token);
        std::string_view key = token.substr(0, eq);
        std::string_view value = token.substr(eq + 1);
        size_t index = static_cast<size_t>(std::find(kKeys.begin(), kKeys.end(), key) - kKeys.begin());
        // Keys a later kernel may add are skipped; the four known ones are required.
        if (index == kKeys.size()) continue;
        if (seen[index]) return Error::msg("{} given twice", key);
        seen[index] = true;
        if (index == 3) {
            auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out.total_us);
            if (ec != std::errc{} || ptr != value.data() + value.size() || value.empty()) {
                return Error::msg("total='{}' is not a count", value);
            }
            continue;
        }
        double v = VMM_TRY(parse_percent(key, value));
        (index == 0 ? out.avg10 : index == 1 ? out.avg60 : out.avg300) = v;
    }
    for (size_t i = 0; i < kKeys.size(); ++i) {
        if (!seen[i]) return Error::msg("missing {}", kKeys[i]);
    }
    return out;
}

}  // namespace

Result<PsiSample> parse_psi(std::string_view text) {
    std::optional<PsiLine> some;
    std::optional<PsiLine> full;
    for (std::string_view line : split(text, '\n')) {
        if (line.empty()) continue;  // the trailing newline
        std::string_view kind = line.substr(0, line.find(' '));
        std::optional<PsiLine>* slot = kind == "some" ? &some : kind == "full" ? &full : nullptr;
        if (slot == nullptr) return Error::msg("PSI: unexpected line '{}'", line);
        if (slot->has_value()) return Error::msg("PSI: '{}' line given twice", kind);
        *slot = VMM_TRY_CTX(parse_line(line), fmt::format("PSI '{}' line", kind));
    }
    if (!some) return Error("PSI: no 'some' line");
    return PsiSample{*some, full};
}

Result<std::string> parse_cgroup_v2_path(std::string_view proc_self_cgroup) {
    for (std::string_view line : split(proc_self_cgroup, '\n')) {
        // v2 is hierarchy 0 with an empty controller list: "0::/path".
        if (line.starts_with("0::")) {
            std::string_view path = line.substr(3);
            if (!path.starts_with('/')) return Error::msg("cgroup v2 path '{}' is not absolute", path);
            return std::string(path);
        }
    }
    return Error("no cgroup v2 entry in /proc/self/cgroup (cgroup v1 only?)");
}

namespace {

// mountinfo writes space, tab, newline and backslash as \ooo octal escapes.
std::string unescape_mountinfo(std::string_view field) {
    std::string out;
    for (size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && i + 3 < field.size()) {
            int value = 0;
            bool octal = true;
            for (size_t k = 1; k <= 3; ++k) {
                char c = field[i + k];
                octal = octal && c >= '0' && c <= '7';
                value = value * 8 + (c - '0');
            }
            if (octal) {
                out.push_back(static_cast<char>(value));
                i += 3;
                continue;
            }
        }
        out.push_back(field[i]);
    }
    return out;
}

}  // namespace

Result<Cgroup2Mount> find_cgroup2_mount(std::string_view mountinfo) {
    for (std::string_view line : split(mountinfo, '\n')) {
        // "36 35 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw"
        auto fields = split(line, ' ');
        size_t dash = 0;
        while (dash < fields.size() && fields[dash] != "-") ++dash;
        if (dash < 5 || dash + 1 >= fields.size()) continue;
        if (fields[dash + 1] != "cgroup2") continue;
        return Cgroup2Mount{unescape_mountinfo(fields[4]), unescape_mountinfo(fields[3])};
    }
    return Error("no cgroup2 mount in /proc/self/mountinfo");
}

Result<std::string> cgroup_memory_pressure_path(const Cgroup2Mount& mount, std::string_view cgroup_path) {
    std::string_view root = mount.root;
    if (root.ends_with('/')) root.remove_suffix(1);
    std::string_view rest = cgroup_path;
    if (!rest.starts_with(root) || (rest.size() > root.size() && rest[root.size()] != '/')) {
        return Error::msg("cgroup {} lies outside the cgroup2 mount of {} at {}", cgroup_path, mount.root,
                          mount.mount_point);
    }
    rest.remove_prefix(root.size());
    if (rest.find("/../") != std::string_view::npos || rest.ends_with("/.."))
        return Error::msg("cgroup path '{}' climbs up", cgroup_path);
    std::string path = mount.mount_point;
    if (path.ends_with('/')) path.pop_back();
    path += rest;
    if (!path.ends_with('/')) path += '/';
    return path + "memory.pressure";
}

}  // namespace vmm::balloon::auto_balloon
