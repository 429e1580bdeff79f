#include "vmm/console_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <memory>

#include "common/unique_fd.h"

namespace vmm {
namespace {

// Writes everything, retrying on EINTR; output errors (a closed pipe) drop data
// rather than stopping the guest.
void write_all(int fd, std::span<const std::byte> data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return;
        }
        data = data.subspan(static_cast<size_t>(n));
    }
}

}  // namespace

Result<ConsoleSink> make_console_sink(const ConsoleConfig& config) {
    switch (config.mode) {
        case ConsoleMode::off:
        case ConsoleMode::null: return ConsoleSink([](std::span<const std::byte>) {});
        case ConsoleMode::tty: return ConsoleSink([](std::span<const std::byte> d) { write_all(STDOUT_FILENO, d); });
        case ConsoleMode::file: {
            int fd = ::open(config.file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (fd < 0) return Error::from_errno(fmt::format("opening console file {}", config.file));
            auto owned = std::make_shared<UniqueFd>(fd);
            return ConsoleSink([owned](std::span<const std::byte> d) { write_all(owned->get(), d); });
        }
    }
    return Error::msg("unknown console mode");
}

TerminalRawMode::TerminalRawMode() {
    if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &m_saved) != 0) return;
    termios raw = m_saved;
    cfmakeraw(&raw);
    raw.c_oflag |= OPOST | ONLCR;  // keep output readable when the guest prints bare \n
    if (::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) m_active = true;
}

TerminalRawMode::~TerminalRawMode() {
    if (m_active) ::tcsetattr(STDIN_FILENO, TCSANOW, &m_saved);
}

}  // namespace vmm
