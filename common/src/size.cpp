#include "common/size.h"

#include <cctype>
#include <charconv>

namespace vmm {

Result<uint64_t> parse_size(std::string_view text) {
    size_t digits = 0;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) {
        ++digits;
    }
    std::string_view suffix = text.substr(digits);
    unsigned shift = 0;
    if (suffix.size() == 1) {
        switch (std::tolower(static_cast<unsigned char>(suffix[0]))) {
            case 'k': shift = 10; break;
            case 'm': shift = 20; break;
            case 'g': shift = 30; break;
            case 't': shift = 40; break;
            default: return Error::msg("invalid size '{}'", text);
        }
    } else if (!suffix.empty()) {
        return Error::msg("invalid size '{}'", text);
    }
    if (digits == 0) return Error::msg("invalid size '{}'", text);

    uint64_t number = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, number);
    (void)ptr;
    uint64_t bytes = 0;
    if (ec != std::errc{} || __builtin_mul_overflow(number, uint64_t{1} << shift, &bytes)) {
        return Error::msg("size '{}' does not fit in 64 bits", text);
    }
    return bytes;
}

std::string format_size(uint64_t bytes) {
    static constexpr struct {
        unsigned shift;
        char suffix;
    } kUnits[] = {{40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
    if (bytes != 0) {
        for (const auto& unit : kUnits) {
            uint64_t mask = (uint64_t{1} << unit.shift) - 1;
            if ((bytes & mask) == 0) return fmt::format("{}{}", bytes >> unit.shift, unit.suffix);
        }
    }
    return fmt::format("{}", bytes);
}

}  // namespace vmm
