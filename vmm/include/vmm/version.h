#pragma once

#include <string_view>

namespace vmm {
inline constexpr std::string_view kVmmVersion = "0.2.0";
}  // namespace vmm
