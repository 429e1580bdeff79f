// HyperAlloc reclaim and return rates with a VFIO function present (the simulated
// kernel VFIO of tests/support/vfio_sim, which pins = populates what it maps) beside
// the same VM without one, in one run (docs/benchmarks.md, "HyperAlloc with VFIO").
//   build/bench/vfio_reclaim_bench --test-guest build/tests/guest/test_guest.elf
//       [--ram-gib 3] [--reclaim-gib 2] [--runs 3]
// Each run boots the test guest (mode hyperalloc, 64 MiB working set) with all RAM
// populated (prefault), waits for its zones, then times vm.resize-balloon to the
// reclaim size and back to 0 through the VMM thread's request channel (the resize
// is applied synchronously there: hard reclaim, DMA unmap of each merged range,
// discard). The VFIO cost measured is the VMM's (its bookkeeping and one
// VFIO_IOMMU_UNMAP_DMA per merged range into the simulation); a real IOMMU adds the
// kernel's unpinning and IOTLB flushes on top.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "sim_vfio.h"
#include "vmm/request_channel.h"
#include "vmm/vm.h"

using namespace vmm;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
    std::string guest;
    uint64_t ram_gib = 3, reclaim_gib = 2;
    int runs = 3;
};

struct Sample {
    double reclaim_s = 0, return_s = 0;
    uint64_t unmap_calls = 0, map_calls = 0;
};

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "vfio_reclaim_bench: %s\n", what.c_str());
    std::exit(1);
}

VmReply call(RequestChannel& channel, VmRequest request) {
    auto reply = channel.call(std::move(request), std::chrono::seconds(60));
    if (!reply) die(reply.error().message());
    if (auto* e = std::get_if<RequestError>(&*reply)) die(e->message);
    return *reply;
}

double timed_resize(RequestChannel& channel, uint64_t bytes) {
    auto t0 = Clock::now();
    call(channel, request::ResizeBalloon{bytes});
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

Sample run_once(const Args& a, bool with_vfio) {
    auto sim = std::make_shared<vfio::sim::SimVfio>();
    sim->populate_on_map = true;
    sim->add_function("0000:01:00.0", 7);
    VmConfig config;
    config.memory.size = a.ram_gib << 30;
    config.memory.prefault = true;
    config.payload.kernel = a.guest;
    config.payload.cmdline = "testguest.mode=hyperalloc testguest.ha_hold=64 testguest.seconds=600";
    config.serial.mode = ConsoleMode::null;
    config.balloon = BalloonConfig{};
    config.seccomp = SeccompMode::off;  // the bench thread shares the process with the VM
    if (with_vfio) config.devices.push_back({"0000:01:00.0", "vfio0"});
    auto vm = Vm::create(config, VmServices{sim});
    if (!vm) die(vm.error().message());
    auto channel = RequestChannel::create();
    if (!channel) die(channel.error().message());
    (*vm)->attach_requests(*channel);
    std::thread runner([&] { (void)(*vm)->run(); });

    // The guest's driver has reported its zones once the device lists them.
    auto deadline = Clock::now() + std::chrono::seconds(120);
    for (;;) {
        auto info = std::get<BalloonInfo>(call(**channel, request::GetBalloonStatistics{}));
        if (info.hyperalloc && !info.hyperalloc->zones.empty()) break;
        if (Clock::now() > deadline) die("the guest never reported its zones");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));  // the workload is running
    Sample s;
    uint64_t unmaps_before = 0;
    {
        std::lock_guard lock(sim->dma_mutex);
        unmaps_before = sim->unmap_calls;
    }
    s.reclaim_s = timed_resize(**channel, a.reclaim_gib << 30);
    {
        std::lock_guard lock(sim->dma_mutex);
        s.unmap_calls = sim->unmap_calls - unmaps_before;
    }
    auto info = std::get<BalloonInfo>(call(**channel, request::GetBalloonStatistics{}));
    if (info.actual_bytes != a.reclaim_gib << 30)
        die("the balloon reached " + std::to_string(info.actual_bytes >> 20) + " MiB, not the target");
    s.return_s = timed_resize(**channel, 0);
    (*vm)->request_exit(VmExitKind::poweroff, "bench done");
    runner.join();
    return s;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    Args a;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        if (k == "--test-guest") a.guest = v;
        else if (k == "--ram-gib") a.ram_gib = std::stoull(v);
        else if (k == "--reclaim-gib") a.reclaim_gib = std::stoull(v);
        else if (k == "--runs") a.runs = std::stoi(v);
        else die("unknown option " + k);
    }
    if (a.guest.empty()) die("--test-guest PATH is required");
    if (a.reclaim_gib == 0 || a.reclaim_gib >= a.ram_gib) die("--reclaim-gib must be in 1 .. ram-gib - 1");
    log::set_level(log::Level::warn);
    std::vector<double> rec[2], ret[2];
    uint64_t unmaps = 0;
    for (int r = 0; r < a.runs; ++r) {
        for (int v = 0; v < 2; ++v) {  // alternate, so both see the same host conditions
            Sample s = run_once(a, v == 1);
            rec[v].push_back(s.reclaim_s);
            ret[v].push_back(s.return_s);
            if (v == 1) unmaps = s.unmap_calls;
            std::printf("run %d %-10s reclaim %.2f ms  return %.2f ms%s\n", r + 1, v ? "with VFIO" : "no VFIO",
                        s.reclaim_s * 1e3, s.return_s * 1e3,
                        v ? (" (" + std::to_string(s.unmap_calls) + " UNMAP_DMA)").c_str() : "");
        }
    }
    double gib = static_cast<double>(a.reclaim_gib);
    double r0 = gib / median(rec[0]), r1 = gib / median(rec[1]);
    double t0 = gib / median(ret[0]), t1 = gib / median(ret[1]);
    std::printf("\nmedian of %d runs, %llu GiB of a %llu GiB guest (test guest, prefaulted):\n", a.runs,
                static_cast<unsigned long long>(a.reclaim_gib), static_cast<unsigned long long>(a.ram_gib));
    std::printf("  reclaim without VFIO  %8.1f GiB/s\n  reclaim with VFIO     %8.1f GiB/s  (%.2fx of without; %llu unmap ioctls)\n",
                r0, r1, r1 / r0, static_cast<unsigned long long>(unmaps));
    std::printf("  return  without VFIO  %8.1f GiB/s\n  return  with VFIO     %8.1f GiB/s  (%.2fx)\n", t0, t1, t1 / t0);
    return 0;
}
