#include "common/log.h"

#include <mutex>

namespace vmm::log {
namespace {
std::atomic<Level> g_level{Level::warn};
std::atomic<std::FILE*> g_sink{nullptr};
std::mutex g_write_mutex;
const auto g_start = std::chrono::steady_clock::now();

const char* level_name(Level l) {
    switch (l) {
        case Level::error: return "ERROR";
        case Level::warn: return "WARN";
        case Level::info: return "INFO";
        case Level::debug: return "DEBUG";
    }
    return "?";
}
}  // namespace

std::chrono::steady_clock::time_point start_time() { return g_start; }

void set_level(Level l) { g_level.store(l); }
Level level() { return g_level.load(); }
void set_sink(std::FILE* sink) { g_sink.store(sink); }

void write(Level l, std::string_view message) {
    auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - g_start).count();
    std::FILE* out = g_sink.load();
    if (out == nullptr) out = stderr;
    std::lock_guard lock(g_write_mutex);
    fmt::print(out, "vmm [{:10.6f}] {}: {}\n", elapsed, level_name(l), message);
    std::fflush(out);
}

bool RateLimiter::allow() {
    int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now().time_since_epoch())
                      .count();
    int64_t start = m_window_start_ns.load();
    if (now - start > std::chrono::duration_cast<std::chrono::nanoseconds>(m_period).count()) {
        if (m_window_start_ns.compare_exchange_strong(start, now)) m_count.store(0);
    }
    if (m_count.fetch_add(1) < m_burst) return true;
    m_suppressed.fetch_add(1);
    return false;
}

}  // namespace vmm::log
