#include "cli/option_parser.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <vector>

namespace vmm::cli {

namespace {

// Splits on top-level commas only: a comma inside [...] or "..." belongs to
// the value (CH option_parser's split_commas).
Result<std::vector<std::string_view>> split_commas(std::string_view input) {
    std::vector<std::string_view> items;
    int depth = 0;
    bool in_quotes = false;
    size_t start = 0;
    for (size_t i = 0; i < input.size(); ++i) {
        char c = input[i];
        if (c == '"') {
            in_quotes = !in_quotes;
        } else if (in_quotes) {
            continue;
        } else if (c == '[') {
            ++depth;
        } else if (c == ']') {
            if (depth == 0) return Error::msg("unbalanced ']' in '{}'", input);
            --depth;
        } else if (c == ',' && depth == 0) {
            items.push_back(input.substr(start, i - start));
            start = i + 1;
        }
    }
    if (in_quotes) return Error::msg("unterminated quote in '{}'", input);
    if (depth != 0) return Error::msg("unbalanced '[' in '{}'", input);
    items.push_back(input.substr(start));
    return items;
}

// A fully quoted value is the text between the quotes: cmdline="a,b" -> a,b.
std::string_view unquote(std::string_view value) {
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        return value.substr(1, value.size() - 2);
    }
    return value;
}

std::string lowercase(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

}  // namespace

OptionParser& OptionParser::add(std::string key) {
    m_entries[std::move(key)] = Entry{};
    return *this;
}

OptionParser& OptionParser::add_valueless(std::string key) {
    Entry entry;
    entry.valueless = true;
    m_entries[std::move(key)] = entry;
    return *this;
}

Result<void> OptionParser::parse(std::string_view input) {
    for (auto& [key, entry] : m_entries) {
        entry.set = false;
        entry.value.clear();
    }
    // An empty string sets nothing ("--memory=" keeps every default).
    if (input.empty()) return ok();
    auto items = VMM_TRY(split_commas(input));
    for (std::string_view item : items) VMM_TRY(parse_item(item));
    return ok();
}

Result<void> OptionParser::parse_item(std::string_view item) {
    if (item.empty()) return Error::msg("empty item (stray comma)");
    size_t eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    auto it = m_entries.find(key);
    if (it == m_entries.end()) return Error::msg("unknown key '{}'", key);
    Entry& entry = it->second;
    if (entry.set) return Error::msg("duplicate key '{}'", key);
    if (entry.valueless && eq != std::string_view::npos) {
        return Error::msg("key '{}' takes no value", key);
    }
    if (!entry.valueless && eq == std::string_view::npos) {
        return Error::msg("key '{}' needs a value ({}=...)", key, key);
    }
    entry.set = true;
    if (!entry.valueless) entry.value = std::string(unquote(item.substr(eq + 1)));
    return ok();
}

bool OptionParser::is_set(std::string_view key) const {
    auto it = m_entries.find(key);
    return it != m_entries.end() && it->second.set;
}

Result<const OptionParser::Entry*> OptionParser::valued_entry(std::string_view key) const {
    auto it = m_entries.find(key);
    // Both cases are programming errors in the caller, reported rather than asserted.
    if (it == m_entries.end()) return Error::msg("key '{}' was not registered", key);
    if (it->second.valueless) return Error::msg("key '{}' has no value to get", key);
    return &it->second;
}

Result<std::optional<std::string>> OptionParser::get_string(std::string_view key) const {
    const Entry* entry = VMM_TRY(valued_entry(key));
    if (!entry->set) return std::optional<std::string>{};
    return std::optional<std::string>{entry->value};
}

Result<std::optional<uint64_t>> OptionParser::get_u64(std::string_view key) const {
    const Entry* entry = VMM_TRY(valued_entry(key));
    if (!entry->set) return std::optional<uint64_t>{};
    return std::optional<uint64_t>{VMM_TRY(parse_u64(entry->value))};
}

Result<std::optional<uint64_t>> OptionParser::get_size(std::string_view key) const {
    const Entry* entry = VMM_TRY(valued_entry(key));
    if (!entry->set) return std::optional<uint64_t>{};
    return std::optional<uint64_t>{VMM_TRY(parse_size(entry->value))};
}

Result<std::optional<bool>> OptionParser::get_bool(std::string_view key) const {
    const Entry* entry = VMM_TRY(valued_entry(key));
    if (!entry->set) return std::optional<bool>{};
    return std::optional<bool>{VMM_TRY(parse_toggle(entry->value))};
}

Result<uint64_t> parse_u64(std::string_view text) {
    uint64_t value = 0;
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec == std::errc::result_out_of_range) {
        return Error::msg("number '{}' is out of range", text);
    }
    if (text.empty() || ec != std::errc{} || ptr != end) {
        return Error::msg("invalid number '{}'", text);
    }
    return value;
}

Result<bool> parse_toggle(std::string_view text) {
    std::string lower = lowercase(text);
    if (lower.empty() || lower == "off" || lower == "false") return false;
    if (lower == "on" || lower == "true") return true;
    return Error::msg("invalid toggle '{}' (expected on|off|true|false)", text);
}

}  // namespace vmm::cli
