// Sizes as users write them: bytes, or a number with a K/M/G/T suffix (powers of
// two, either case). Shared by the command line and the REST API.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace vmm {

[[nodiscard]] Result<uint64_t> parse_size(std::string_view text);
// The largest exact unit: 1073741824 -> "1G", 1000 -> "1000".
std::string format_size(uint64_t bytes);

}  // namespace vmm
