#include "balloon/auto/psi_source.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <array>
#include <cerrno>

#include "common/log.h"

namespace vmm::balloon::auto_balloon {

namespace {

// From linux/magic.h; PSI triggers exist only on these two file systems.
constexpr long kProcSuperMagic = 0x9fa0;
constexpr long kCgroup2SuperMagic = 0x63677270;

// PSI text is two lines of under 100 bytes; anything near this size is not PSI.
constexpr size_t kMaxPsiText = 1024;

Result<std::string> pread_all(int fd, std::string_view what) {
    std::array<char, kMaxPsiText> buffer{};
    std::string text;
    while (true) {
        ssize_t n = ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(text.size()));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno(fmt::format("reading {}", what));
        if (n == 0) break;
        text.append(buffer.data(), static_cast<size_t>(n));
        if (text.size() >= kMaxPsiText)
            return Error::msg("{}: more than {} bytes, not PSI text", what, kMaxPsiText);
    }
    return text;
}

Result<std::string> read_text_file(const char* path) {
    UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return Error::from_errno(fmt::format("opening {}", path));
    std::string text;
    std::array<char, 4096> buffer{};
    while (true) {
        ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno(fmt::format("reading {}", path));
        if (n == 0) return text;
        text.append(buffer.data(), static_cast<size_t>(n));
        // mountinfo of a container host can be long, but not this long.
        if (text.size() > (16u << 20)) return Error::msg("{} is larger than 16 MiB", path);
    }
}

// Tries to register `trigger` on `path`; the fd to watch on success, otherwise
// why not (the caller falls back to periodic reading).
struct TriggerAttempt {
    UniqueFd fd;
    std::string reason;
};

TriggerAttempt register_trigger(const std::string& path, int read_fd, const PsiTrigger& trigger) {
    struct statfs fs {};
    if (::fstatfs(read_fd, &fs) != 0)
        return {UniqueFd(), fmt::format("fstatfs failed: {}", std::strerror(errno))};
    long magic = static_cast<long>(fs.f_type);
    if (magic != kProcSuperMagic && magic != kCgroup2SuperMagic) {
        return {UniqueFd(), fmt::format("not a kernel PSI file (file system magic {:#x})", magic)};
    }
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK));
    // EACCES/EPERM: no write access (unprivileged, kernels before 6.5); EROFS: a
    // read-only /proc in a container.
    if (!fd) return {UniqueFd(), fmt::format("opening for writing: {}", std::strerror(errno))};
    std::string text = trigger_text(trigger);
    ssize_t n = ::write(fd.get(), text.data(), text.size());
    // EINVAL: window refused (not a multiple of 2 s without CAP_SYS_RESOURCE);
    // EOPNOTSUPP: PSI disabled for this cgroup; EBUSY: a trigger is already there.
    if (n < 0)
        return {UniqueFd(), fmt::format("PSI trigger '{}' refused: {}", text.c_str(), std::strerror(errno))};
    if (static_cast<size_t>(n) != text.size()) {
        return {UniqueFd(), fmt::format("PSI trigger '{}': short write", text.c_str())};
    }
    return {std::move(fd), fmt::format("PSI trigger '{}' registered", text.c_str())};
}

}  // namespace

Result<void> validate_trigger(const PsiTrigger& trigger) {
    using std::chrono::microseconds;
    if (trigger.window < microseconds(500'000) || trigger.window > microseconds(10'000'000)) {
        return Error::msg("PSI trigger window {} µs outside 500 ms..10 s", trigger.window.count());
    }
    if (trigger.stall <= microseconds(0) || trigger.stall > trigger.window) {
        return Error::msg("PSI trigger stall {} µs must be positive and at most the window ({} µs)",
                          trigger.stall.count(), trigger.window.count());
    }
    return ok();
}

std::string trigger_text(const PsiTrigger& trigger) {
    std::string text = fmt::format("{} {} {}", trigger.full ? "full" : "some", trigger.stall.count(),
                                   trigger.window.count());
    text.push_back('\0');
    return text;
}

Result<PsiSource> PsiSource::open(std::string path, std::optional<PsiTrigger> trigger) {
    if (trigger) VMM_TRY(validate_trigger(*trigger));
    UniqueFd read_fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!read_fd) return Error::from_errno(fmt::format("opening PSI file {}", path));
    std::string text = VMM_TRY(pread_all(read_fd.get(), path));
    VMM_TRY_CTX(parse_psi(text), path);

    UniqueFd fd = std::move(read_fd);
    Mode mode = Mode::periodic;
    std::string reason = "no PSI trigger asked for";
    if (trigger) {
        TriggerAttempt attempt = register_trigger(path, fd.get(), *trigger);
        reason = std::move(attempt.reason);
        if (attempt.fd) {
            // The trigger lives as long as the fd that registered it; it also reads.
            fd = std::move(attempt.fd);
            mode = Mode::trigger;
        }
    }
    log::info("auto-balloon: host pressure from {}: {} ({})", path,
              mode == Mode::trigger ? "woken by PSI trigger" : "read every tick", reason);
    return PsiSource(std::move(path), std::move(fd), mode, std::move(reason));
}

Result<PsiSample> PsiSource::read() const {
    std::string text = VMM_TRY(pread_all(m_fd.get(), m_path));
    return VMM_TRY_CTX(parse_psi(text), m_path);
}

PsiEvent PsiSource::on_event(uint32_t events) {
    if (m_mode != Mode::trigger) return PsiEvent::none;
    // The kernel reports a destroyed trigger (its cgroup removed) as ERR|PRI, so the
    // error bit is checked first.
    if (events & (POLLERR | POLLHUP | POLLNVAL)) {
        m_mode = Mode::periodic;
        m_mode_reason = fmt::format("PSI trigger lost (poll events {:#x})", events);
        log::warn("auto-balloon: {}: {}; reading it every tick instead", m_path, m_mode_reason);
        return PsiEvent::trigger_lost;
    }
    return (events & POLLPRI) ? PsiEvent::pressure : PsiEvent::none;
}

Result<std::string> own_cgroup_memory_pressure_path() {
    std::string cgroup_text = VMM_TRY(read_text_file("/proc/self/cgroup"));
    std::string cgroup = VMM_TRY(parse_cgroup_v2_path(cgroup_text));
    std::string mountinfo = VMM_TRY(read_text_file("/proc/self/mountinfo"));
    Cgroup2Mount mount = VMM_TRY(find_cgroup2_mount(mountinfo));
    return cgroup_memory_pressure_path(mount, cgroup);
}

}  // namespace vmm::balloon::auto_balloon
