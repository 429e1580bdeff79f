// Parser for one option value string in cloud-hypervisor's grammar, e.g. the
// "size=1G,shared=on" after --memory. Items are key=value pairs separated by
// commas; commas inside [...] or "..." do not split, so list values such as
// "affinity=[0@[1,2]]" survive. Each user registers its keys up front so that
// typos are reported instead of silently ignored.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/size.h"

namespace vmm::cli {

class OptionParser {
public:
    // Registers a key that needs a value ("size=1G").
    OptionParser& add(std::string key);
    // Registers a key that takes no value ("tty").
    OptionParser& add_valueless(std::string key);

    // Parses `input`, replacing the result of any earlier parse. Errors:
    // unknown key, duplicate key, a valueless key given a value, a key missing
    // its "=value", an empty item, unbalanced brackets or quotes.
    [[nodiscard]] Result<void> parse(std::string_view input);

    // True when the key appeared in the input (valued or valueless).
    bool is_set(std::string_view key) const;

    // Getters answer nullopt when the key was not given. Asking for a key that
    // was never registered, or for the value of a valueless key, is an error.
    [[nodiscard]] Result<std::optional<std::string>> get_string(std::string_view key) const;
    // Decimal number.
    [[nodiscard]] Result<std::optional<uint64_t>> get_u64(std::string_view key) const;
    // Bytes: a bare number, or a number with a K/M/G/T suffix (powers of two).
    [[nodiscard]] Result<std::optional<uint64_t>> get_size(std::string_view key) const;
    // on/off/true/false (any case); an empty value means false, as in CH.
    [[nodiscard]] Result<std::optional<bool>> get_bool(std::string_view key) const;

private:
    struct Entry {
        bool valueless = false;
        bool set = false;
        std::string value;
    };
    [[nodiscard]] Result<const Entry*> valued_entry(std::string_view key) const;
    [[nodiscard]] Result<void> parse_item(std::string_view item);

    std::map<std::string, Entry, std::less<>> m_entries;
};

using vmm::parse_size;  // common/size.h
// Strict decimal u64 parsing as used by OptionParser::get_u64.
[[nodiscard]] Result<uint64_t> parse_u64(std::string_view text);
// Toggle parsing as used by OptionParser::get_bool.
[[nodiscard]] Result<bool> parse_toggle(std::string_view text);
using vmm::format_size;

}  // namespace vmm::cli
