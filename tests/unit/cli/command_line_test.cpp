#include "cli/command_line.h"

#include <catch2/catch.hpp>

using vmm::ConsoleMode;
using vmm::cli::CliCommand;
using vmm::cli::parse_command_line;

namespace {

using Strings = std::vector<std::string>;

vmm::Result<CliCommand> parse(Strings args) { return parse_command_line(args); }

// Parses "--kernel k" plus `extra`, requiring success and a run command.
vmm::cli::RunOptions run_with(Strings extra) {
    Strings args{"--kernel", "k"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = parse(args);
    if (!r) FAIL(r.error().message());
    REQUIRE(r->kind == CliCommand::Kind::run);
    return r->run;
}

std::string error_of(Strings args) {
    auto r = parse(args);
    REQUIRE_FALSE(r);
    return r.error().message();
}

}  // namespace

TEST_CASE("defaults with only --kernel", "[command_line]") {
    auto run = run_with({});
    const vmm::VmConfig defaults;
    CHECK(run.vm.payload.kernel == "k");
    CHECK(run.vm.payload.cmdline.empty());
    CHECK_FALSE(run.vm.payload.initramfs.has_value());
    CHECK(run.vm.cpus.boot == 1);
    CHECK(run.vm.memory.size == 512ull << 20);
    CHECK(run.vm.memory.shared == defaults.memory.shared);
    CHECK(run.vm.memory.thp == defaults.memory.thp);
    CHECK(run.vm.memory.prefault == defaults.memory.prefault);
    CHECK(run.vm.serial.mode == ConsoleMode::tty);
    CHECK(run.verbosity == 0);
    CHECK_FALSE(run.log_file.has_value());
}

TEST_CASE("every flag lands in its field", "[command_line]") {
    auto run = run_with({"--cmdline", "console=ttyS0 root=/dev/vda", "--initramfs", "initrd.cpio.gz",
                         "--cpus", "boot=4", "--memory", "size=1G,shared=on,thp=off,prefault=on",
                         "--serial", "file=/tmp/out.log", "-v", "-vv", "--log-file", "vmm.log"});
    CHECK(run.vm.payload.cmdline == "console=ttyS0 root=/dev/vda");
    CHECK(run.vm.payload.initramfs == "initrd.cpio.gz");
    CHECK(run.vm.cpus.boot == 4);
    CHECK(run.vm.memory.size == 1ull << 30);
    CHECK(run.vm.memory.shared);
    CHECK_FALSE(run.vm.memory.thp);
    CHECK(run.vm.memory.prefault);
    CHECK(run.vm.serial.mode == ConsoleMode::file);
    CHECK(run.vm.serial.file == "/tmp/out.log");
    CHECK(run.verbosity == 3);
    CHECK(run.log_file == "vmm.log");
}

TEST_CASE("the --flag=value form", "[command_line]") {
    auto r = parse({"--kernel=vmlinux", "--cmdline=a=b c", "--cpus=boot=2", "--memory=size=2G",
                    "--serial=off", "--initramfs=i", "--log-file=l"});
    REQUIRE(r);
    const auto& vm = r->run.vm;
    CHECK(vm.payload.kernel == "vmlinux");
    CHECK(vm.payload.cmdline == "a=b c");
    CHECK(vm.cpus.boot == 2);
    CHECK(vm.memory.size == 2ull << 30);
    CHECK(vm.serial.mode == ConsoleMode::off);
    CHECK(vm.payload.initramfs == "i");
    CHECK(r->run.log_file == "l");
}

TEST_CASE("serial modes", "[command_line]") {
    CHECK(run_with({"--serial", "off"}).vm.serial.mode == ConsoleMode::off);
    CHECK(run_with({"--serial", "null"}).vm.serial.mode == ConsoleMode::null);
    CHECK(run_with({"--serial", "tty"}).vm.serial.mode == ConsoleMode::tty);
    CHECK(error_of({"--kernel", "k", "--serial", "pty"}) == "--serial: unknown key 'pty'");
    CHECK(error_of({"--kernel", "k", "--serial", "tty,off"}).starts_with(
        "--serial: expected exactly one of off|null|tty|file=PATH"));
    CHECK(error_of({"--kernel", "k", "--serial", "file="}) == "--serial: file= needs a path");
    CHECK(error_of({"--kernel", "k", "--serial", "tty=1"}) == "--serial: key 'tty' takes no value");
}

TEST_CASE("memory sizes at and beyond the limits", "[command_line]") {
    CHECK(run_with({"--memory", "size=16M"}).vm.memory.size == 16ull << 20);
    CHECK(run_with({"--memory", "size=1T"}).vm.memory.size == 1ull << 40);
    CHECK(run_with({"--memory", "size=16781312"}).vm.memory.size == (16ull << 20) + 4096);
    CHECK(run_with({"--memory", "shared=on"}).vm.memory.size == 512ull << 20);

    CHECK(error_of({"--kernel", "k", "--memory", "size=1M"}) ==
          "--memory: size 1M is below the minimum of 16M");
    CHECK(error_of({"--kernel", "k", "--memory", "size=1025G"}) ==
          "--memory: size 1025G is above the maximum of 1T");
    CHECK(error_of({"--kernel", "k", "--memory", "size=16777217"}) ==
          "--memory: size 16777217 is not a multiple of 4K");
    CHECK(error_of({"--kernel", "k", "--memory", "size=x1G"}) == "--memory: invalid size 'x1G'");
    CHECK(error_of({"--kernel", "k", "--memory", "size=99999999999G"}).starts_with(
        "--memory: size '99999999999G'"));
    CHECK(error_of({"--kernel", "k", "--memory", "sise=1G"}) == "--memory: unknown key 'sise'");
    CHECK(error_of({"--kernel", "k", "--memory", "size=1G,size=2G"}) ==
          "--memory: duplicate key 'size'");
    CHECK(error_of({"--kernel", "k", "--memory", "thp=maybe"}).starts_with(
        "--memory: invalid toggle 'maybe'"));
}

TEST_CASE("cpu count range", "[command_line]") {
    CHECK(run_with({"--cpus", "boot=1"}).vm.cpus.boot == 1);
    // The limit is what the MP table can announce (40 with a 1 KiB table).
    REQUIRE(vmm::cli::kMaxBootCpus == 40);
    CHECK(run_with({"--cpus", "boot=40"}).vm.cpus.boot == 40);
    CHECK(error_of({"--kernel", "k", "--cpus", "boot=0"}) ==
          "--cpus: boot=0 is out of range (1..40)");
    CHECK(error_of({"--kernel", "k", "--cpus", "boot=41"}) ==
          "--cpus: boot=41 is out of range (1..40)");
    CHECK(error_of({"--kernel", "k", "--cpus", "boot=two"}) == "--cpus: invalid number 'two'");
    CHECK(error_of({"--kernel", "k", "--cpus", "max=4"}) == "--cpus: unknown key 'max'");
    CHECK(error_of({"--kernel", "k", "--cpus", "boot"}).starts_with(
        "--cpus: key 'boot' needs a value"));
}

TEST_CASE("command-line error classes", "[command_line]") {
    CHECK(error_of({}) == "missing required option '--kernel'");
    CHECK(error_of({"--cpus", "boot=2"}) == "missing required option '--kernel'");
    CHECK(error_of({"--kernel", ""}) == "--kernel: empty path");
    CHECK(error_of({"--kernel", "k", "--initramfs="}) == "--initramfs: empty path");
    CHECK(error_of({"--kernel", "k", "--log-file", ""}) == "--log-file: empty path");
    CHECK(error_of({"--kernel", "k", "--foo"}) == "unknown option '--foo'");
    CHECK(error_of({"--kernel", "k", "-x"}) == "unknown option '-x'");
    CHECK(error_of({"--kernel"}) == "option '--kernel' needs a value");
    CHECK(error_of({"--kernel", "--memory", "size=1G"}) == "option '--kernel' needs a value");
    CHECK(error_of({"--kernel", "a", "--kernel", "b"}) == "option '--kernel' given more than once");
    CHECK(error_of({"--kernel", "k", "--memory", "size=1G", "--memory=size=2G"}) ==
          "option '--memory' given more than once");
    CHECK(error_of({"--kernel", "k", "vmlinux"}) == "unexpected argument 'vmlinux'");
    CHECK(error_of({"--kernel", "k", "--version=1"}) == "option '--version' takes no value");
}

TEST_CASE("help and version win over run options", "[command_line]") {
    CHECK(parse({"--help"})->kind == CliCommand::Kind::help);
    CHECK(parse({"-h"})->kind == CliCommand::Kind::help);
    CHECK(parse({"--kernel", "k", "--memory", "size=1M", "-h"})->kind == CliCommand::Kind::help);
    CHECK(parse({"-V"})->kind == CliCommand::Kind::version);
    CHECK(parse({"--version"})->kind == CliCommand::Kind::version);
    // Unknown flags are still reported.
    CHECK_FALSE(parse({"--help", "--bogus"}));
}

TEST_CASE("help text documents every flag, the example and exit codes", "[command_line]") {
    std::string help = vmm::cli::help_text();
    for (const char* flag : {"--kernel", "--cmdline", "--initramfs", "--cpus", "--memory",
                             "--serial", "-v", "--log-file", "-h, --help", "-V, --version"}) {
        INFO(flag);
        CHECK(help.find(flag) != std::string::npos);
    }
    for (const char* key : {"boot=N", "size=SIZE", "shared=", "thp=", "prefault=", "512M",
                            "off|null|tty|file=PATH", "Usage:"}) {
        INFO(key);
        CHECK(help.find(key) != std::string::npos);
    }
    CHECK(help.find("vmm --kernel vmlinux --cmdline \"console=ttyS0\" --cpus boot=2 "
                    "--memory size=1G --initramfs initrd.cpio.gz") != std::string::npos);
    CHECK(help.find("reboots or powers off") != std::string::npos);
    CHECK(vmm::cli::version_text() == fmt::format("vmm {}\n", vmm::cli::kVersion));
}

TEST_CASE("the help example parses", "[command_line]") {
    auto r = parse({"--kernel", "vmlinux", "--cmdline", "console=ttyS0", "--cpus", "boot=2",
                    "--memory", "size=1G", "--initramfs", "initrd.cpio.gz"});
    REQUIRE(r);
    CHECK(r->run.vm.cpus.boot == 2);
    CHECK(r->run.vm.memory.size == 1ull << 30);
    CHECK(r->run.vm.payload.initramfs == "initrd.cpio.gz");
}

TEST_CASE("the --device flag is repeatable in cloud-hypervisor's grammar", "[command_line][vfio]") {
    auto run = run_with({"--device", "path=/sys/bus/pci/devices/0000:01:00.0/", "path=0000:02:00.0,id=nic"});
    REQUIRE(run.vm.devices.size() == 2);
    CHECK(run.vm.devices[0].path == "/sys/bus/pci/devices/0000:01:00.0/");
    CHECK(run.vm.devices[0].id.empty());
    CHECK(run.vm.devices[1].path == "0000:02:00.0");
    CHECK(run.vm.devices[1].id == "nic");
    CHECK_THAT(error_of({"--kernel", "k", "--device", "id=x"}), Catch::Contains("path= is required"));
    CHECK_THAT(error_of({"--kernel", "k", "--device", "path=0000:01:00.0,iommu=on"}), Catch::Contains("not supported"));
    CHECK_THAT(error_of({"--kernel", "k", "--device", "path=a,colour=red"}), Catch::Contains("colour"));
}

TEST_CASE("the --seccomp flag takes true|false|log and is on by default", "[command_line][seccomp]") {
    CHECK(run_with({}).vm.seccomp == vmm::SeccompMode::on);
    CHECK(run_with({"--seccomp", "true"}).vm.seccomp == vmm::SeccompMode::on);
    CHECK(run_with({"--seccomp", "false"}).vm.seccomp == vmm::SeccompMode::off);
    CHECK(run_with({"--seccomp=log"}).vm.seccomp == vmm::SeccompMode::log);
    CHECK_THAT(error_of({"--kernel", "k", "--seccomp", "on"}), Catch::Contains("true|false|log"));
}

TEST_CASE("allow_vfio belongs to the virtio-balloon", "[command_line][vfio]") {
    auto run = run_with({"--balloon", "model=virtio,size=64M,allow_vfio=on"});
    REQUIRE(run.vm.balloon);
    CHECK(run.vm.balloon->allow_vfio);
    CHECK_THAT(error_of({"--kernel", "k", "--balloon", "size=64M,allow_vfio=on"}), Catch::Contains("model=virtio"));
}
