// Reads host memory pressure from a PSI file (/proc/pressure/memory or a cgroup v2
// memory.pressure) and, where the kernel allows it, registers a PSI trigger so that
// the event loop wakes as soon as stalls pass a threshold instead of at the next
// tick. Without a trigger (an unprivileged container before Linux 6.5, a window
// that is not a multiple of 2 s without CAP_SYS_RESOURCE, a read-only /proc, a
// plain file in tests) the source is read periodically; which of the two applies,
// and why, is logged once and kept in mode_reason().
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "balloon/auto/psi.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace vmm::balloon::auto_balloon {

inline constexpr const char* kSystemMemoryPressure = "/proc/pressure/memory";

// "<some|full> <stall µs> <window µs>": wake when tasks stalled for `stall` within
// any `window`. The kernel accepts windows of 500 ms..10 s, and without
// CAP_SYS_RESOURCE only multiples of 2 s: hence the 2 s default.
struct PsiTrigger {
    bool full = false;
    std::chrono::microseconds stall{200'000};
    std::chrono::microseconds window{2'000'000};
};

// The kernel's limits (kernel/sched/psi.c); a trigger outside them is a
// configuration error, not a reason to fall back.
[[nodiscard]] Result<void> validate_trigger(const PsiTrigger& trigger);
// The text written to register it, NUL included: the kernel overwrites the last
// byte written with a NUL, so the terminator must be part of the write.
std::string trigger_text(const PsiTrigger& trigger);

enum class PsiEvent {
    none,          // nothing for this source in the mask
    pressure,      // the trigger fired: read a sample and run the policy now
    trigger_lost,  // POLLERR (e.g. the cgroup was removed): now read periodically
};

class PsiSource {
public:
    enum class Mode { trigger, periodic };

    // Opens `path` and reads one sample to check that it holds PSI text. With a
    // trigger, registers it when the file is a kernel PSI file (procfs or cgroup2)
    // and the kernel accepts it; otherwise falls back to periodic reading.
    [[nodiscard]] static Result<PsiSource> open(std::string path, std::optional<PsiTrigger> trigger);

    // The current sample (pread at offset 0: the kernel regenerates the text).
    [[nodiscard]] Result<PsiSample> read() const;

    Mode mode() const { return m_mode; }
    // Why this mode: "PSI trigger 'some 200000 2000000' registered", or the errno
    // or file system that made the source fall back.
    const std::string& mode_reason() const { return m_mode_reason; }
    const std::string& path() const { return m_path; }
    // In trigger mode, the fd to watch for POLLPRI (EPOLLPRI); -1 in periodic mode.
    int poll_fd() const { return m_mode == Mode::trigger ? m_fd.get() : -1; }
    // Interprets a poll/epoll event mask for poll_fd(). On trigger_lost the source
    // switches to periodic mode (the caller stops watching the fd).
    PsiEvent on_event(uint32_t events);

private:
    PsiSource(std::string path, UniqueFd fd, Mode mode, std::string reason)
        : m_path(std::move(path)), m_fd(std::move(fd)), m_mode(mode), m_mode_reason(std::move(reason)) {}

    std::string m_path;
    UniqueFd m_fd;
    Mode m_mode;
    std::string m_mode_reason;
};

// The memory.pressure file of the cgroup this process runs in (reads
// /proc/self/cgroup and /proc/self/mountinfo).
[[nodiscard]] Result<std::string> own_cgroup_memory_pressure_path();

}  // namespace vmm::balloon::auto_balloon
