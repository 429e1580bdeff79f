// Minimal leveled logging to stderr. The guest console owns stdout, so every
// VMM message goes to stderr (or the --log-file).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string_view>

#include <fmt/format.h>

namespace vmm::log {

enum class Level { error = 0, warn = 1, info = 2, debug = 3 };

// When the process started (steady clock): the origin of every log timestamp and
// of boot-progress times.
std::chrono::steady_clock::time_point start_time();

void set_level(Level level);
Level level();
// Redirects log output (nullptr restores stderr). The FILE stays owned by the caller.
void set_sink(std::FILE* sink);
void write(Level level, std::string_view message);

template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
    if (level() >= Level::warn) write(Level::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    if (level() >= Level::info) write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    if (level() >= Level::debug) write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}

// Lets through at most `burst` messages per `period`; a guest can otherwise
// flood the host log with malformed requests. Counts what it suppressed.
class RateLimiter {
public:
    explicit RateLimiter(unsigned burst = 10,
                         std::chrono::milliseconds period = std::chrono::seconds(5))
        : m_burst(burst), m_period(period) {}
    // True when the caller may log now.
    bool allow();
    uint64_t suppressed() const { return m_suppressed.load(); }

private:
    unsigned m_burst;
    std::chrono::milliseconds m_period;
    std::atomic<int64_t> m_window_start_ns{0};
    std::atomic<unsigned> m_count{0};
    std::atomic<uint64_t> m_suppressed{0};
};

}  // namespace vmm::log
