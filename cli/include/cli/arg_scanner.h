// Splits argv into flags and their values according to a table of flag
// descriptors, before any value is interpreted. Keeping this generic lets
// cloud-hypervisor style device flags (`--disk path=a path=b`, repeatable and
// taking several values) be added by a table entry alone.
#pragma once

#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace vmm::cli {

enum class Arity {
    none,  // a switch: -v, --help
    one,   // exactly one value: --kernel PATH or --kernel=PATH
    many,  // one or more values: every following argument not starting with '-'
    optional,  // zero or one value: --rng or --rng src=/dev/hwrng
};

struct FlagSpec {
    std::string_view long_name;  // without dashes ("memory"); empty if short only
    char short_name = 0;         // 'v' for -v; 0 if long only
    Arity arity = Arity::one;
    bool repeatable = false;      // may be given more than once
    std::string_view value_name;  // for help: "PATH", "size=SIZE,..."
    std::string_view help;        // for help; may span several lines

    // "--memory", or "-v" for a short-only flag.
    std::string display_name() const;
    // The key under which ScannedArgs records it: long name, else the short letter.
    std::string key() const;
};

// What scan_args found, grouped by flag key; values keep command-line order.
class ScannedArgs {
public:
    // How many times the flag was given.
    size_t count(std::string_view key) const;
    bool has(std::string_view key) const { return count(key) != 0; }
    // Every value of every occurrence, in order (empty for switches).
    const std::vector<std::string>& values(std::string_view key) const;

    void record(const std::string& key, std::vector<std::string> values);

private:
    struct Occurrences {
        size_t count = 0;
        std::vector<std::string> values;
    };
    std::map<std::string, Occurrences, std::less<>> m_flags;
};

// Errors (one line, naming the flag): unknown option, a switch given a value,
// a flag missing its value, a non-repeatable flag given twice, a stray
// positional argument. Short switches may be clustered: -vv, -hv.
[[nodiscard]] Result<ScannedArgs> scan_args(std::span<const std::string> args,
                                            std::span<const FlagSpec> specs);

}  // namespace vmm::cli
