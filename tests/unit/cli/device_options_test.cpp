#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "cli/command_line.h"
#include "balloon/auto/policy.h"
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

TEST_CASE("balloon model=virtio must be smaller than guest memory and page-aligned", "[device_options]") {
    auto run = run_with({"--memory", "size=1G", "--balloon",
                         "model=virtio,size=256M,deflate_on_oom=on,free_page_reporting=on,stats_polling_interval_s=1"});
    REQUIRE(run.vm.balloon);
    CHECK(run.vm.balloon->model == vmm::BalloonModel::virtio);
    CHECK(run.vm.balloon->size == 256ull << 20);
    CHECK(run.vm.balloon->deflate_on_oom);
    CHECK(run.vm.balloon->free_page_reporting);
    CHECK(run.vm.balloon->stats_polling_interval_s == 1);
    CHECK_FALSE(run.vm.balloon->auto_mode);
    // The memory flag may come after the balloon: the check uses the final size.
    CHECK(run_with({"--balloon", "model=virtio,size=600M", "--memory", "size=1G"}).vm.balloon->size == 600ull << 20);
    CHECK(error_of({"--memory", "size=1G", "--balloon", "model=virtio,size=1G"}) ==
          "--balloon: size 1G must be smaller than guest memory (1G)");
    CHECK(error_of({"--balloon", "model=virtio,size=1000"}) == "--balloon: size 1000 is not a multiple of 4 KiB");
    CHECK(error_of({"--balloon", "model=virtio,deflate_on_oom=on"}) == "--balloon: size= is required with model=virtio");
    CHECK(error_of({"--balloon", "model=virtio,size=1M,stats_polling_interval_s=99999"}) ==
          "--balloon: stats_polling_interval_s=99999 is above 3600");
    // A 4 KiB multiple that is no 2 MiB multiple is fine for the virtio-balloon.
    CHECK(run_with({"--balloon", "model=virtio,size=1M"}).vm.balloon->size == 1ull << 20);
}

TEST_CASE("balloon defaults to model=hyperalloc with its defaults", "[device_options]") {
    auto run = run_with({"--memory", "size=1G", "--balloon", "size=64M"});
    REQUIRE(run.vm.balloon);
    const vmm::BalloonConfig& b = *run.vm.balloon;
    CHECK(b.model == vmm::BalloonModel::hyperalloc);
    CHECK(b.size == 64ull << 20);
    CHECK_FALSE(b.auto_mode);
    CHECK(b.auto_period_ms == 5000);
    CHECK(b.auto_limit_bytes == 0);
    CHECK(b.shrink_pagecache);
    CHECK(b.install_path == vmm::InstallPath::vcpu);
    CHECK_FALSE(b.deflate_on_oom);
    // No size: an empty balloon (useful with auto=on).
    CHECK(run_with({"--balloon", "auto=on"}).vm.balloon->size == 0);
    CHECK(run_with({"--balloon", "model=hyperalloc,size=2M"}).vm.balloon->size == 2ull << 20);
    CHECK(error_of({"--balloon", "model=virtio-mem,size=2M"}) ==
          "--balloon: model='virtio-mem' is not one of hyperalloc|virtio");
}

TEST_CASE("balloon model=hyperalloc takes its own keys", "[device_options]") {
    auto run = run_with({"--memory", "size=2G", "--balloon",
                         "model=hyperalloc,size=1G,auto=on,period=500ms,auto_limit=64M,shrink_pagecache=off,"
                         "install=worker"});
    const vmm::BalloonConfig& b = *run.vm.balloon;
    CHECK(b.size == 1ull << 30);
    CHECK(b.auto_mode);
    CHECK(b.auto_period_ms == 500);
    CHECK(b.auto_limit_bytes == 64ull << 20);
    CHECK_FALSE(b.shrink_pagecache);
    CHECK(b.install_path == vmm::InstallPath::worker);
    CHECK(run_with({"--balloon", "period=5s"}).vm.balloon->auto_period_ms == 5000);
    CHECK(run_with({"--balloon", "period=2m"}).vm.balloon->auto_period_ms == 120000);
    CHECK(run_with({"--balloon", "period=10ms"}).vm.balloon->auto_period_ms == 10);
    CHECK(run_with({"--balloon", "install=vcpu"}).vm.balloon->install_path == vmm::InstallPath::vcpu);
}

TEST_CASE("balloon model=hyperalloc rejects bad values", "[device_options]") {
    CHECK(error_of({"--balloon", "size=3M"}) ==
          "--balloon: size 3M is not a multiple of 2 MiB (HyperAlloc reclaims 2 MiB frames)");
    CHECK(error_of({"--balloon", "size=4K"}) ==
          "--balloon: size 4K is not a multiple of 2 MiB (HyperAlloc reclaims 2 MiB frames)");
    CHECK(error_of({"--memory", "size=512M", "--balloon", "size=512M"}) ==
          "--balloon: size 512M must be smaller than guest memory (512M)");
    CHECK(error_of({"--balloon", "period=9ms"}) == "--balloon: period=9ms is shorter than 10 ms");
    CHECK(error_of({"--balloon", "period=0s"}) == "--balloon: period=0s is shorter than 10 ms");
    CHECK(error_of({"--balloon", "period=5"}) ==
          "--balloon: period='5' needs a number and a unit (ms, s or m), e.g. 5s or 500ms");
    CHECK(error_of({"--balloon", "period=s"}) ==
          "--balloon: period='s' needs a number and a unit (ms, s or m), e.g. 5s or 500ms");
    CHECK(error_of({"--balloon", "period=5h"}) == "--balloon: period='5h': unknown unit 'h' (ms, s or m)");
    CHECK(error_of({"--balloon", "period=61m"}) == "--balloon: period='61m' is longer than one hour");
    CHECK(error_of({"--balloon", "period=99999999999999999999999s"}) ==
          "--balloon: period='99999999999999999999999s' is longer than one hour");
    CHECK(error_of({"--balloon", "auto_limit=64M"}) == "--balloon: auto_limit= needs auto=on");
    CHECK(error_of({"--balloon", "auto=on,auto_limit=3M"}) == "--balloon: auto_limit 3M is not a multiple of 2 MiB");
    CHECK(error_of({"--balloon", "install=api"}) == "--balloon: install='api' is not one of vcpu|worker");
    CHECK(error_of({"--balloon", "auto=maybe"}) ==
          "--balloon: invalid toggle 'maybe' (expected on|off|true|false)");
}

TEST_CASE("balloon keys of the other model are errors", "[device_options]") {
    for (const char* key : {"deflate_on_oom=on", "free_page_reporting=off", "stats_polling_interval_s=1"}) {
        std::string name(key, std::string_view(key).find('='));
        INFO(key);
        CHECK(error_of({"--balloon", fmt::format("size=2M,{}", key)}) ==
              fmt::format("--balloon: {} applies to model=virtio", name));
        CHECK(error_of({"--balloon", fmt::format("model=hyperalloc,size=2M,{}", key)}) ==
              fmt::format("--balloon: {} applies to model=virtio", name));
    }
    for (const char* key : {"period=5s", "auto_limit=2M", "shrink_pagecache=on", "install=worker"}) {
        std::string name(key, std::string_view(key).find('='));
        INFO(key);
        CHECK(error_of({"--balloon", fmt::format("model=virtio,size=2M,{}", key)}) ==
              fmt::format("--balloon: {} applies to model=hyperalloc", name));
    }
    // auto=off is what a virtio-balloon does by default.
    CHECK_FALSE(run_with({"--balloon", "model=virtio,size=2M,auto=off"}).vm.balloon->auto_mode);
    CHECK_FALSE(run_with({"--balloon", "model=virtio,size=2M,auto=off"}).vm.balloon->auto_balloon);
    CHECK(error_of({"--balloon", "size=2M,bogus=1"}) == "--balloon: unknown key 'bogus'");
}

TEST_CASE("balloon auto=on starts the controller for model=virtio", "[device_options][auto]") {
    auto run = run_with({"--memory", "size=2G", "--balloon", "model=virtio,size=0,auto=on"});
    const vmm::BalloonConfig& b = *run.vm.balloon;
    REQUIRE(b.auto_balloon);
    CHECK(b.auto_balloon->policy.kind == vmm::balloon::auto_balloon::BalloonKind::virtio_balloon);
    // The policy needs guest statistics: polled every 2 s unless given.
    CHECK(b.stats_polling_interval_s == 2);
    CHECK_FALSE(b.auto_mode);  // HyperAlloc's soft-reclaim passes do not apply
    CHECK(b.auto_balloon->policy.step_bytes == 256ull << 20);
    CHECK(b.auto_balloon->policy.floor_bytes == 512ull << 20);
    CHECK(b.auto_balloon->psi.path == "/proc/pressure/memory");
    // A small guest keeps a quarter of its RAM by default, not 512 MiB (all of it).
    auto small = run_with({"--memory", "size=512M", "--balloon", "model=virtio,size=64M,auto=on"});
    CHECK(small.vm.balloon->auto_balloon->policy.floor_bytes == 128ull << 20);
    auto odd = run_with({"--memory", "size=1000M", "--balloon", "size=0,auto=on"});
    CHECK(odd.vm.balloon->auto_balloon->policy.floor_bytes == 250ull << 20);
    CHECK(error_of({"--memory", "size=1G", "--balloon", "model=virtio,size=0,auto=on,floor=1G"}) ==
          "--balloon: floor 1G must be smaller than guest memory (1G)");
    CHECK(b.auto_balloon->psi.use_trigger);

    auto keyed = run_with({"--memory", "size=2G", "--balloon",
                           "model=virtio,size=0,auto=on,stats_polling_interval_s=1,step=64M,floor=256M,"
                           "hysteresis=10s,tick=1s,stats_max_age=3s,host_psi_high=20,host_psi_low=8,"
                           "guest_avail_min=64M,psi=/tmp/fake-psi,psi_trigger=off"});
    const auto& o = *keyed.vm.balloon->auto_balloon;
    CHECK(keyed.vm.balloon->stats_polling_interval_s == 1);
    CHECK(o.policy.step_bytes == 64ull << 20);
    CHECK(o.policy.floor_bytes == 256ull << 20);
    CHECK(o.policy.hysteresis == std::chrono::seconds(10));
    CHECK(o.policy.tick == std::chrono::seconds(1));
    CHECK(o.policy.stats_max_age == std::chrono::seconds(3));
    CHECK(o.policy.host.some_high == 20.0);
    CHECK(o.policy.host.some_low == 8.0);
    CHECK(o.policy.guest.available_min_bytes == 64ull << 20);
    CHECK(o.psi.path == "/tmp/fake-psi");
    CHECK_FALSE(o.psi.use_trigger);
}

TEST_CASE("balloon auto=on for model=virtio checks the statistics period", "[device_options][auto]") {
    CHECK(error_of({"--balloon", "model=virtio,size=0,auto=on,stats_polling_interval_s=0"}) ==
          "--balloon: auto=on with model=virtio needs guest statistics: stats_polling_interval_s must not be 0");
    CHECK(error_of({"--balloon", "model=virtio,size=0,auto=on,stats_polling_interval_s=6"}) ==
          "--balloon: stats_polling_interval_s=6 is longer than the auto-balloon tick (5000 ms)");
    CHECK(error_of({"--balloon", "model=virtio,size=0,auto=on,stats_polling_interval_s=5,stats_max_age=9s"}) ==
          "--balloon: stats_max_age (9000 ms) must be at least twice stats_polling_interval_s=5");
    CHECK(error_of({"--balloon", "model=virtio,size=0,auto=on,soft_reclaim=64M"}) ==
          "--balloon: soft_reclaim applies to model=hyperalloc");
    CHECK(error_of({"--balloon", "model=virtio,size=0,auto=on,install_rate=10"}) ==
          "--balloon: install_rate applies to model=hyperalloc");
}

TEST_CASE("balloon auto=on for model=hyperalloc keeps auto mode and rations it", "[device_options][auto]") {
    using vmm::balloon::auto_balloon::kSoftReclaimUnlimited;
    auto run = run_with({"--memory", "size=2G", "--balloon", "auto=on"});
    const vmm::BalloonConfig& b = *run.vm.balloon;
    CHECK(b.auto_mode);
    REQUIRE(b.auto_balloon);
    CHECK(b.auto_balloon->policy.kind == vmm::balloon::auto_balloon::BalloonKind::hyperalloc);
    // Without soft_reclaim= or auto_limit=, a calm auto pass takes every free frame.
    CHECK(b.auto_balloon->policy.soft_reclaim_calm_bytes == kSoftReclaimUnlimited);
    CHECK(b.stats_polling_interval_s == 0);
    // Free frames bound inflates but are no pressure signal unless asked for.
    CHECK(b.auto_balloon->policy.guest.available_min_bytes == 0);
    CHECK(b.auto_balloon->policy.guest.available_min_fraction == 0);
    auto avail = run_with({"--balloon", "auto=on,guest_avail_min=128M"});
    CHECK(avail.vm.balloon->auto_balloon->policy.guest.available_min_bytes == 128ull << 20);

    auto limited = run_with({"--balloon", "auto=on,auto_limit=64M"});
    CHECK(limited.vm.balloon->auto_limit_bytes == 64ull << 20);
    CHECK(limited.vm.balloon->auto_balloon->policy.soft_reclaim_calm_bytes == 64ull << 20);
    auto soft = run_with({"--balloon", "auto=on,soft_reclaim=0,install_rate=32,step=2M"});
    CHECK(soft.vm.balloon->auto_balloon->policy.soft_reclaim_calm_bytes == 0);
    CHECK(soft.vm.balloon->auto_balloon->policy.guest.installs_per_s == 32.0);
    CHECK(soft.vm.balloon->auto_balloon->policy.step_bytes == 2ull << 20);

    CHECK(error_of({"--balloon", "auto=on,auto_limit=64M,soft_reclaim=32M"}) ==
          "--balloon: soft_reclaim= and auto_limit= set the same limit; give one of them");
    // HyperAlloc moves whole 2 MiB frames: a smaller step cannot be taken.
    CHECK(error_of({"--balloon", "auto=on,step=1M"}) ==
          "--balloon: auto balloon: step 1M is below the balloon's granularity 2M");
}

TEST_CASE("balloon auto-balloon keys need auto=on and valid values", "[device_options][auto]") {
    CHECK(error_of({"--balloon", "step=64M"}) == "--balloon: step= is an auto-balloon option and needs auto=on");
    CHECK(error_of({"--balloon", "model=virtio,size=0,auto=off,psi=/x"}) ==
          "--balloon: psi= is an auto-balloon option and needs auto=on");
    CHECK(error_of({"--balloon", "auto=on,psi=relative/path"}).find("not system, cgroup or an absolute path") !=
          std::string::npos);
    CHECK(error_of({"--balloon", "auto=on,host_psi_low=20,host_psi_high=10"}).find("host_psi_low") !=
          std::string::npos);
    CHECK(error_of({"--balloon", "auto=on,tick=50ms"}) == "--balloon: auto balloon: tick must be at least 100ms");
    CHECK(error_of({"--balloon", "auto=on,hysteresis=soon"}).find("auto balloon option hysteresis") !=
          std::string::npos);
    CHECK(error_of({"--balloon", "auto=on,psi_window=20s"}).find("outside 500 ms..10 s") != std::string::npos);
}
