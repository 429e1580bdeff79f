#include "cli/arg_scanner.h"

#include <optional>

namespace vmm::cli {

std::string FlagSpec::display_name() const {
    if (!long_name.empty()) return fmt::format("--{}", long_name);
    return fmt::format("-{}", short_name);
}

std::string FlagSpec::key() const {
    if (!long_name.empty()) return std::string(long_name);
    return std::string(1, short_name);
}

size_t ScannedArgs::count(std::string_view key) const {
    auto it = m_flags.find(key);
    return it == m_flags.end() ? 0 : it->second.count;
}

const std::vector<std::string>& ScannedArgs::values(std::string_view key) const {
    static const std::vector<std::string> kNone;
    auto it = m_flags.find(key);
    return it == m_flags.end() ? kNone : it->second.values;
}

void ScannedArgs::record(const std::string& key, std::vector<std::string> values) {
    Occurrences& occ = m_flags[key];
    ++occ.count;
    for (auto& v : values) occ.values.push_back(std::move(v));
}

namespace {

// An argument that starts with '-' is the next flag, never a value; values
// that really start with '-' use the --flag=value form.
bool is_value(const std::string& arg) { return arg.empty() || arg[0] != '-'; }

class Scanner {
public:
    Scanner(std::span<const std::string> args, std::span<const FlagSpec> specs)
        : m_args(args), m_specs(specs) {}

    Result<ScannedArgs> run() {
        while (m_next < m_args.size()) {
            const std::string& arg = m_args[m_next++];
            if (arg.size() > 2 && arg.starts_with("--")) {
                VMM_TRY(scan_long(arg));
            } else if (arg.size() > 1 && arg[0] == '-' && arg != "--") {
                VMM_TRY(scan_short_cluster(arg));
            } else {
                return Error::msg("unexpected argument '{}'", arg);
            }
        }
        return std::move(m_result);
    }

private:
    Result<void> scan_long(const std::string& arg) {
        std::string_view body = std::string_view(arg).substr(2);
        size_t eq = body.find('=');
        std::string_view name = body.substr(0, eq);
        for (const FlagSpec& spec : m_specs) {
            if (!spec.long_name.empty() && spec.long_name == name) {
                std::optional<std::string> inline_value;
                if (eq != std::string_view::npos) inline_value = std::string(body.substr(eq + 1));
                return take(spec, std::move(inline_value));
            }
        }
        return Error::msg("unknown option '--{}'", name);
    }

    // "-vv" is -v twice; a flag taking values may only end a cluster.
    Result<void> scan_short_cluster(const std::string& arg) {
        std::vector<const FlagSpec*> cluster;
        for (size_t i = 1; i < arg.size(); ++i) {
            const FlagSpec* found = nullptr;
            for (const FlagSpec& spec : m_specs) {
                if (spec.short_name != 0 && spec.short_name == arg[i]) found = &spec;
            }
            if (found == nullptr) return Error::msg("unknown option '{}'", arg);
            if (found->arity != Arity::none && i + 1 != arg.size()) {
                return Error::msg("option '{}' needs a value and must end '{}'",
                                  found->display_name(), arg);
            }
            cluster.push_back(found);
        }
        for (const FlagSpec* spec : cluster) VMM_TRY(take(*spec, std::nullopt));
        return ok();
    }

    Result<void> take(const FlagSpec& spec, std::optional<std::string> inline_value) {
        std::string key = spec.key();
        if (!spec.repeatable && m_result.has(key)) {
            return Error::msg("option '{}' given more than once", spec.display_name());
        }
        std::vector<std::string> values;
        if (spec.arity == Arity::none) {
            if (inline_value) return Error::msg("option '{}' takes no value", spec.display_name());
        } else {
            if (inline_value) values.push_back(std::move(*inline_value));
            bool want_more = spec.arity == Arity::many || values.empty();
            while (want_more && m_next < m_args.size() && is_value(m_args[m_next])) {
                values.push_back(m_args[m_next++]);
                want_more = spec.arity == Arity::many;
            }
            if (values.empty() && spec.arity != Arity::optional) {
                return Error::msg("option '{}' needs a value", spec.display_name());
            }
        }
        m_result.record(key, std::move(values));
        return ok();
    }

    std::span<const std::string> m_args;
    std::span<const FlagSpec> m_specs;
    size_t m_next = 0;
    ScannedArgs m_result;
};

}  // namespace

Result<ScannedArgs> scan_args(std::span<const std::string> args, std::span<const FlagSpec> specs) {
    return Scanner(args, specs).run();
}

}  // namespace vmm::cli
