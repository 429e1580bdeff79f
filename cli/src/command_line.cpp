#include "cli/command_line.h"

#include <array>

#include "cli/arg_scanner.h"
#include "cli/device_options.h"
#include "cli/option_parser.h"

namespace vmm::cli {

namespace {

// Every flag the VMM accepts. Device flags in CH style (--disk path=a path=b)
// are added here with Arity::many and repeatable = true.
constexpr std::array kFlags = {
    FlagSpec{"kernel", 0, Arity::one, false, "PATH",
             "Guest kernel: vmlinux (ELF with a PVH note) or bzImage. Required."},
    FlagSpec{"cmdline", 0, Arity::one, false, "STRING",
             "Kernel command line (default: \"console=ttyS0 reboot=k panic=1\"). virtio-mmio\n"
             "devices are appended as virtio_mmio.device=4K@ADDR:IRQ."},
    FlagSpec{"initramfs", 0, Arity::one, false, "PATH",
             "Initramfs image loaded into guest memory (default: none)."},
    FlagSpec{"cpus", 0, Arity::one, false, "boot=N",
             "boot=N     vCPUs started at boot, 1..40 (default 1; the MP table limit)."},
    FlagSpec{"memory", 0, Arity::one, false, "size=SIZE,shared=on|off,thp=on|off,prefault=on|off",
             "size=SIZE  guest RAM; bytes or with a K/M/G/T suffix (powers of two);\n"
             "           at least 16M, at most 1T, a multiple of 4K (default 512M).\n"
             "shared=    back RAM with a memfd, mapped shared (default off).\n"
             "thp=       advise transparent huge pages (default on).\n"
             "prefault=  populate all guest RAM at start (default off)."},
    FlagSpec{"serial", 0, Arity::one, false, "off|null|tty|file=PATH",
             "Serial port (8250 at 0x3f8): off (no device), null (discard output),\n"
             "tty (this terminal: stdout and stdin) or file=PATH (output written to PATH)\n"
             "(default tty)."},
    FlagSpec{"disk", 0, Arity::many, true, "path=PATH,readonly=on|off,direct=on|off,id=ID ...",
             "virtio-blk on a raw image file; several disks: --disk path=a path=b.\n"
             "readonly= the guest cannot write (default off); direct= O_DIRECT (default off)."},
    FlagSpec{"net", 0, Arity::many, true, "tap=NAME,ip=IP,mask=MASK,mac=MAC,id=ID ...",
             "virtio-net on a tap device (created if absent). ip=/mask= configure the host\n"
             "side of the tap; mac= the guest's MAC (default: random, locally administered)."},
    FlagSpec{"rng", 0, Arity::optional, false, "[src=PATH]",
             "virtio-rng reading from src (default /dev/urandom)."},
    FlagSpec{"console", 0, Arity::one, false, "off|null|tty|file=PATH",
             "virtio-console (hvc0): like --serial (default off)."},
    FlagSpec{"balloon", 0, Arity::one, false,
             "[model=hyperalloc|virtio],size=SIZE,...",
             "A balloon with an initial target of SIZE (smaller than guest memory).\n"
             "model=hyperalloc (default; needs a HyperAlloc guest driver): size= a multiple\n"
             "of 2 MiB (default 0); auto= reclaim the guest's free 2 MiB frames every period\n"
             "and size the balloon automatically (default off); period= e.g. 5s or 500ms,\n"
             "at least 10ms (default 5s); auto_limit= at most SIZE per period with auto=on\n"
             "while nobody is under memory pressure (default 0: no limit);\n"
             "shrink_pagecache= ask the guest to drop page cache when a shrink falls short\n"
             "(default on); install=vcpu|worker: the thread that backs frames the guest\n"
             "takes back (default vcpu).\n"
             "model=virtio (the standard virtio-balloon): size= required, a multiple of 4 KiB;\n"
             "deflate_on_oom= the guest may take pages back under OOM (default off);\n"
             "free_page_reporting= the guest reports free pages, which are discarded (default off);\n"
             "stats_polling_interval_s= guest statistics every N seconds (default 0: none;\n"
             "2 with auto=on); auto=on sizes the balloon automatically; allow_vfio= accept\n"
             "--device although ballooned pages then stay pinned for DMA (default off).\n"
             "auto=on (both models): the balloon follows host memory pressure (PSI) and\n"
             "gives memory back at once when the guest runs short (docs/auto-balloon.md).\n"
             "Its keys: psi=system|cgroup|PATH, psi_trigger=some|full|off, psi_stall=,\n"
             "psi_window=, tick=, step=, floor=, hysteresis=, host_psi_high=, host_psi_low=,\n"
             "host_psi_full=, host_psi_idle=, guest_avail_pct=, guest_avail_min=,\n"
             "guest_majflt_rate=, guest_stall_rate=, stats_max_age=, idle_step=;\n"
             "hyperalloc also install_rate= and soft_reclaim=."},
    FlagSpec{"device", 0, Arity::many, true, "path=/sys/bus/pci/devices/DDDD:BB:SS.F/,id=ID ...",
             "Pass a PCI function bound to vfio-pci through to the guest (docs/vfio.md);\n"
             "several: --device path=a path=b. The balloon is set up first whatever the\n"
             "order of the flags; model=virtio needs allow_vfio=on (its pages stay pinned)."},
    FlagSpec{"seccomp", 0, Arity::one, false, "true|false|log",
             "Per-thread system call filters (docs/seccomp.md): true (default) kills the VMM\n"
             "on a forbidden call, log lets the kernel log it, false installs none."},
    FlagSpec{"api-socket", 0, Arity::one, false, "path=PATH",
             "Serve the REST API (docs/api.md) on a Unix socket at PATH (mode 0600).\n"
             "Control it with curl --unix-socket PATH or 'vmm remote --api-socket PATH'."},
    FlagSpec{"", 'v', Arity::none, true, "",
             "More log output; repeat for more (-v info, -vv debug, -vvv trace).\n"
             "Default level: warn."},
    FlagSpec{"log-file", 0, Arity::one, false, "PATH",
             "Write the VMM's log to PATH instead of stderr."},
    FlagSpec{"help", 'h', Arity::none, false, "", "Print this help and exit."},
    FlagSpec{"version", 'V', Arity::none, false, "", "Print the version and exit."},
};

// The value of a non-repeatable one-value flag, or nullptr when absent.
const std::string* single_value(const ScannedArgs& scanned, std::string_view key) {
    const auto& values = scanned.values(key);
    return values.empty() ? nullptr : &values.back();
}

Result<std::string> non_empty_path(const std::string& value) {
    if (value.empty()) return Error::msg("empty path");
    return value;
}

Result<void> apply_cpus(std::string_view value, CpusConfig& cpus) {
    OptionParser parser;
    parser.add("boot");
    VMM_TRY(parser.parse(value));
    auto boot = VMM_TRY(parser.get_u64("boot"));
    if (boot) {
        if (*boot < 1 || *boot > kMaxBootCpus) {
            return Error::msg("boot={} is out of range (1..{})", *boot, kMaxBootCpus);
        }
        cpus.boot = static_cast<unsigned>(*boot);
    }
    return ok();
}

Result<void> check_memory_size(uint64_t size) {
    if (size < kMinMemorySize) {
        return Error::msg("size {} is below the minimum of {}", format_size(size),
                          format_size(kMinMemorySize));
    }
    if (size > kMaxMemorySize) {
        return Error::msg("size {} is above the maximum of {}", format_size(size),
                          format_size(kMaxMemorySize));
    }
    if (size % kMemoryAlignment != 0) {
        return Error::msg("size {} is not a multiple of {}", format_size(size),
                          format_size(kMemoryAlignment));
    }
    return ok();
}

Result<void> apply_memory(std::string_view value, MemoryConfig& memory) {
    OptionParser parser;
    parser.add("size").add("shared").add("thp").add("prefault");
    VMM_TRY(parser.parse(value));
    auto size = VMM_TRY(parser.get_size("size"));
    if (size) {
        VMM_TRY(check_memory_size(*size));
        memory.size = *size;
    }
    auto shared = VMM_TRY(parser.get_bool("shared"));
    auto thp = VMM_TRY(parser.get_bool("thp"));
    auto prefault = VMM_TRY(parser.get_bool("prefault"));
    memory.shared = shared.value_or(memory.shared);
    memory.thp = thp.value_or(memory.thp);
    memory.prefault = prefault.value_or(memory.prefault);
    return ok();
}

Result<RunOptions> build_run_options(const ScannedArgs& scanned) {
    RunOptions run;
    VmConfig& vm = run.vm;
    const std::string* kernel = single_value(scanned, "kernel");
    if (kernel == nullptr) return Error::msg("missing required option '--kernel'");
    vm.payload.kernel = VMM_TRY_CTX(non_empty_path(*kernel), "--kernel");
    if (const std::string* v = single_value(scanned, "cmdline")) vm.payload.cmdline = *v;
    if (const std::string* v = single_value(scanned, "initramfs")) {
        vm.payload.initramfs = VMM_TRY_CTX(non_empty_path(*v), "--initramfs");
    }
    if (const std::string* v = single_value(scanned, "cpus")) {
        VMM_TRY_CTX(apply_cpus(*v, vm.cpus), "--cpus");
    }
    if (const std::string* v = single_value(scanned, "memory")) {
        VMM_TRY_CTX(apply_memory(*v, vm.memory), "--memory");
    }
    if (const std::string* v = single_value(scanned, "serial")) {
        vm.serial = VMM_TRY_CTX(parse_console(*v), "--serial");
    }
    for (const std::string& v : scanned.values("disk")) vm.disks.push_back(VMM_TRY_CTX(parse_disk(v), "--disk"));
    for (const std::string& v : scanned.values("net")) vm.nets.push_back(VMM_TRY_CTX(parse_net(v), "--net"));
    if (scanned.has("rng")) {
        const std::string* v = single_value(scanned, "rng");
        vm.rng = VMM_TRY_CTX(parse_rng(v ? *v : std::string()), "--rng");
    }
    if (const std::string* v = single_value(scanned, "console")) {
        vm.console = VMM_TRY_CTX(parse_console(*v), "--console");
    }
    if (const std::string* v = single_value(scanned, "balloon")) {
        vm.balloon = VMM_TRY_CTX(parse_balloon(*v, vm.memory.size), "--balloon");
    }
    for (const std::string& v : scanned.values("device")) vm.devices.push_back(VMM_TRY_CTX(parse_device(v), "--device"));
    if (const std::string* v = single_value(scanned, "seccomp")) {
        if (*v == "true") vm.seccomp = SeccompMode::on;
        else if (*v == "false") vm.seccomp = SeccompMode::off;
        else if (*v == "log") vm.seccomp = SeccompMode::log;
        else return Error::msg("--seccomp: '{}' is not one of true|false|log", *v);
    }
    if (const std::string* v = single_value(scanned, "api-socket")) {
        OptionParser parser;
        parser.add("path");
        VMM_TRY_CTX(parser.parse(*v), "--api-socket");
        auto path = VMM_TRY_CTX(parser.get_string("path"), "--api-socket");
        if (!path || path->empty()) return Error::msg("--api-socket: path= is required");
        run.api_socket = *path;
    }
    if (const std::string* v = single_value(scanned, "log-file")) {
        run.log_file = VMM_TRY_CTX(non_empty_path(*v), "--log-file");
    }
    run.verbosity = static_cast<int>(scanned.count("v"));
    return run;
}

std::string flag_heading(const FlagSpec& flag) {
    std::string names;
    if (flag.short_name != 0) names = fmt::format("-{}", flag.short_name);
    if (!flag.long_name.empty()) {
        if (!names.empty()) names += ", ";
        names += fmt::format("--{}", flag.long_name);
    }
    if (!flag.value_name.empty()) names += fmt::format(" {}", flag.value_name);
    if (flag.repeatable) names += " (repeatable)";
    return names;
}

}  // namespace

Result<CliCommand> parse_command_line(std::span<const std::string> args) {
    ScannedArgs scanned = VMM_TRY(scan_args(args, kFlags));
    CliCommand command;
    if (scanned.has("help")) {
        command.kind = CliCommand::Kind::help;
    } else if (scanned.has("version")) {
        command.kind = CliCommand::Kind::version;
    } else {
        command.kind = CliCommand::Kind::run;
        command.run = VMM_TRY(build_run_options(scanned));
    }
    return command;
}

std::string help_text() {
    std::string text = fmt::format(
        "vmm {} - a KVM virtual machine monitor for x86_64 Linux guests\n\n"
        "Usage: vmm --kernel PATH [--cmdline STRING] [--initramfs PATH] [--cpus boot=N]\n"
        "           [--memory size=SIZE,...] [--serial MODE] [--console MODE] [--disk ...]\n"
        "           [--net ...] [--rng [src=PATH]] [--balloon [model=M,]size=SIZE,...]\n"
        "           [--device path=PATH ...] [--seccomp true|false|log]\n"
        "           [--api-socket path=PATH] [-v...] [--log-file PATH]\n"
        "       vmm remote --api-socket PATH COMMAND [ARGS]   (see 'vmm remote --help')\n\n"
        "Options take their value as the next argument or after '=' (--memory=size=1G).\n"
        "Option values are comma-separated key=value lists; commas inside [...] or \"...\"\n"
        "do not split.\n\n"
        "Options:\n",
        kVersion);
    for (const FlagSpec& flag : kFlags) {
        text += fmt::format("  {}\n", flag_heading(flag));
        std::string_view help = flag.help;
        while (!help.empty()) {
            size_t eol = help.find('\n');
            text += fmt::format("      {}\n", help.substr(0, eol));
            help = eol == std::string_view::npos ? std::string_view{} : help.substr(eol + 1);
        }
    }
    text +=
        "\nExample:\n"
        "  vmm --kernel vmlinux --cmdline \"console=ttyS0\" --cpus boot=2 --memory size=1G "
        "--initramfs initrd.cpio.gz\n\n"
        "Exit status:\n"
        "  0 when the guest reboots or powers off; non-zero, with the reason printed on\n"
        "  stderr, when the command line is invalid, the VM cannot be set up, or the VM\n"
        "  stops for any other reason.\n";
    return text;
}

std::string version_text() { return fmt::format("vmm {}\n", kVersion); }

}  // namespace vmm::cli
