// Everything needed to build and run one VM, as parsed from the command line (cli/)
// or, later, from the API. Plain data: validation happens in Vm::create.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace vmm {

struct CpusConfig {
    unsigned boot = 1;  // vCPUs started at boot
};

struct MemoryConfig {
    uint64_t size = 512ull << 20;  // bytes
    bool shared = false;           // memfd-backed (MAP_SHARED) instead of anonymous
    bool thp = true;               // advise transparent huge pages
    bool prefault = false;         // populate all guest RAM at start
};

struct PayloadConfig {
    std::string kernel;                    // vmlinux (ELF) or bzImage
    std::string cmdline;                   // kernel command line as given by the user
    std::optional<std::string> initramfs;  // initramfs image (any format the kernel reads)
};

// Where a console's output goes (and, for tty, where input comes from).
enum class ConsoleMode { off, null, tty, file };

struct ConsoleConfig {
    ConsoleMode mode = ConsoleMode::tty;
    std::string file;  // for ConsoleMode::file
};

struct VmConfig {
    CpusConfig cpus;
    MemoryConfig memory;
    PayloadConfig payload;
    ConsoleConfig serial;  // the 8250 at 0x3f8
};

}  // namespace vmm
