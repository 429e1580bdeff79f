// Host side of a console: where guest output goes, and the terminal mode while
// the guest owns stdin.
#pragma once

#include <termios.h>

#include <functional>
#include <span>

#include "common/result.h"
#include "vmm/vm_config.h"

namespace vmm {

using ConsoleSink = std::function<void(std::span<const std::byte>)>;

// A sink for `config`: stdout (tty), a file (created 0600, truncated), or nothing.
[[nodiscard]] Result<ConsoleSink> make_console_sink(const ConsoleConfig& config);

// Puts stdin's terminal in raw mode (so keys such as Ctrl-C reach the guest) and
// restores it on destruction. Does nothing when stdin is not a terminal.
class TerminalRawMode {
public:
    TerminalRawMode();
    TerminalRawMode(const TerminalRawMode&) = delete;
    TerminalRawMode& operator=(const TerminalRawMode&) = delete;
    ~TerminalRawMode();

private:
    bool m_active = false;
    termios m_saved{};
};

}  // namespace vmm
