#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "cli/command_line.h"
#include "cli/device_options.h"

using namespace vmm::cli;

namespace {
vmm::cli::RunOptions run_with(std::vector<std::string> args) {
    args.insert(args.begin(), {"--kernel", "vmlinux"});
    auto command = parse_command_line(args);
    if (!command) FAIL(command.error().message());
    return command->run;
}
std::string error_of(std::vector<std::string> args) {
    args.insert(args.begin(), {"--kernel", "vmlinux"});
    auto command = parse_command_line(args);
    REQUIRE_FALSE(command);
    return command.error().message();
}
}  // namespace

TEST_CASE("disk flag takes several disks after one flag and repeats", "[device_options]") {
    auto run = run_with({"--disk", "path=a.img", "path=b.img,readonly=on,id=root", "--disk", "path=c.img,direct=on"});
    REQUIRE(run.vm.disks.size() == 3);
    CHECK(run.vm.disks[0].path == "a.img");
    CHECK_FALSE(run.vm.disks[0].readonly);
    CHECK(run.vm.disks[1].readonly);
    CHECK(run.vm.disks[1].id == "root");
    CHECK(run.vm.disks[2].direct);
    CHECK(error_of({"--disk", "readonly=on"}) == "--disk: path= is required");
    CHECK(error_of({"--disk", "path=a,size=1G"}) == "--disk: unknown key 'size'");
}

TEST_CASE("net flag validates the tap name, addresses and MAC", "[device_options]") {
    auto run = run_with({"--net", "tap=tap0,ip=192.168.249.1,mask=255.255.255.0,mac=12:34:56:78:9a:bc"});
    REQUIRE(run.vm.nets.size() == 1);
    CHECK(run.vm.nets[0].tap == "tap0");
    CHECK(run.vm.nets[0].ip == "192.168.249.1");
    CHECK(run.vm.nets[0].mask == "255.255.255.0");
    CHECK(run.vm.nets[0].mac == "12:34:56:78:9a:bc");
    CHECK(error_of({"--net", "ip=1.2.3.4"}) == "--net: tap= is required");
    CHECK(error_of({"--net", "tap=averyveryverylongname"}) ==
          "--net: tap name 'averyveryverylongname' is longer than 15 characters");
    CHECK(error_of({"--net", "tap=t,ip=300.1.1.1"}) == "--net: ip='300.1.1.1' is not an IPv4 address");
    CHECK(error_of({"--net", "tap=t,mask=255.0.0.0"}) == "--net: mask= needs ip=");
    CHECK(error_of({"--net", "tap=t,mac=01:00:00:00:00:01"}).find("not a unicast MAC") != std::string::npos);
    CHECK(error_of({"--net", "tap=t,mac=12:34:56"}).find("not a unicast MAC") != std::string::npos);
}

TEST_CASE("rng flag works with and without a source", "[device_options]") {
    CHECK_FALSE(run_with({}).vm.rng.has_value());
    auto bare = run_with({"--rng"});
    REQUIRE(bare.vm.rng);
    CHECK(bare.vm.rng->src == "/dev/urandom");
    auto bare_then_flag = run_with({"--rng", "--cpus", "boot=2"});
    REQUIRE(bare_then_flag.vm.rng);
    CHECK(bare_then_flag.vm.cpus.boot == 2);
    auto src = run_with({"--rng", "src=/dev/hwrng"});
    CHECK(src.vm.rng->src == "/dev/hwrng");
    CHECK(error_of({"--rng", "src="}) == "--rng: src= needs a path");
}

TEST_CASE("console flag takes the serial grammar and defaults to off", "[device_options]") {
    CHECK(run_with({}).vm.console.mode == vmm::ConsoleMode::off);
    CHECK(run_with({"--console", "tty"}).vm.console.mode == vmm::ConsoleMode::tty);
    auto file = run_with({"--console", "file=/tmp/hvc.log"});
    CHECK(file.vm.console.mode == vmm::ConsoleMode::file);
    CHECK(file.vm.console.file == "/tmp/hvc.log");
    CHECK(error_of({"--console", "tty,null"}).find("expected exactly one") != std::string::npos);
}

TEST_CASE("balloon flag must be smaller than guest memory and page-aligned", "[device_options]") {
    auto run = run_with({"--memory", "size=1G", "--balloon",
                         "size=256M,deflate_on_oom=on,free_page_reporting=on,stats_polling_interval_s=1"});
    REQUIRE(run.vm.balloon);
    CHECK(run.vm.balloon->size == 256ull << 20);
    CHECK(run.vm.balloon->deflate_on_oom);
    CHECK(run.vm.balloon->free_page_reporting);
    CHECK(run.vm.balloon->stats_polling_interval_s == 1);
    // The memory flag may come after the balloon: the check uses the final size.
    CHECK(run_with({"--balloon", "size=600M", "--memory", "size=1G"}).vm.balloon->size == 600ull << 20);
    CHECK(error_of({"--memory", "size=1G", "--balloon", "size=1G"}) ==
          "--balloon: size 1G must be smaller than guest memory (1G)");
    CHECK(error_of({"--balloon", "size=1000"}) == "--balloon: size 1000 is not a multiple of 4 KiB");
    CHECK(error_of({"--balloon", "deflate_on_oom=on"}) == "--balloon: size= is required");
    CHECK(error_of({"--balloon", "size=1M,stats_polling_interval_s=99999"}) ==
          "--balloon: stats_polling_interval_s=99999 is above 3600");
}
