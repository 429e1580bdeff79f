// The vmm command line, in cloud-hypervisor's grammar:
//   vmm --kernel vmlinux --cmdline "console=ttyS0" --cpus boot=2 --memory size=1G
// parse_command_line turns argv into a VmConfig plus process options; it
// validates what the CLI can check alone (ranges, sizes, required flags) and
// leaves the rest to Vm::create.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "common/result.h"
#include "vmm/boot/mptable.h"
#include "vmm/version.h"
#include "vmm/vm_config.h"

namespace vmm::cli {

inline constexpr std::string_view kVersion = vmm::kVmmVersion;

// Limits checked at parse time.
// The MP table that announces the vCPUs must fit in 1 KiB below 640 KiB.
inline constexpr unsigned kMaxBootCpus = vmm::boot::kMptableMaxCpus;
inline constexpr uint64_t kMinMemorySize = 16ull << 20;
inline constexpr uint64_t kMaxMemorySize = 1ull << 40;
inline constexpr uint64_t kMemoryAlignment = 4ull << 10;

struct RunOptions {
    vmm::VmConfig vm;
    int verbosity = 0;  // number of -v: 0 = warn, 1 = info, 2 = debug, 3+ = trace
    std::optional<std::string> log_file;
    std::optional<std::string> api_socket;  // --api-socket path=PATH
};

struct CliCommand {
    enum class Kind { run, help, version } kind = Kind::run;
    RunOptions run;  // meaningful for Kind::run only
};

// `args` excludes argv[0]. -h/--help and -V/--version win over everything
// else (values are not checked then), but unknown flags are still errors.
[[nodiscard]] vmm::Result<CliCommand> parse_command_line(std::span<const std::string> args);

// Usage, every flag with its keys and defaults, an example and exit codes.
std::string help_text();
// "vmm <version>\n"
std::string version_text();

}  // namespace vmm::cli
