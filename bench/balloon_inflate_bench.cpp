// Host-side inflate rate of the virtio-balloon. A GuestMemory is faulted in, then
// the real VirtioBalloon is driven through its inflate queue as a guest driver
// would (256 PFNs per descriptor, one descriptor per chain, batches of the queue
// size, process_queue(0) after each batch). Only process_queue is timed. Baseline,
// same run: one discard (madvise(MADV_DONTNEED) / PUNCH_HOLE) per 4 KiB page, what
// cloud-hypervisor and kvmtool do per PFN (without their ring processing, so the
// ratios understate our advantage). After each run every page must read back as
// zero and VmRSS must have dropped.
//   balloon_inflate_bench [--size-mib 2048] [--ram-mib 4096] [--runs 3]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "balloon/page_ranges.h"
#include "balloon/virtio_balloon.h"
#include "bench_ring.h"
#include "memory/x86_64_layout.h"

namespace {

using namespace vmm;
namespace dv = vmm::devices::virtio;
namespace mem = vmm::memory;

constexpr uint64_t kRingBase = 0x10000;
constexpr uint64_t kPfnArrayBase = 0x100000;  // 1 MiB: 256 chains x 1 KiB of PFNs
constexpr uint64_t kInflateBase = 16 * mem::x86_64::MiB;  // first page given to the balloon
constexpr uint64_t kMarker = 0x5a5a'1234'abcd'0001;

struct Options {
    uint64_t size_mib = 2048;
    uint64_t ram_mib = 4096;
    unsigned runs = 3;
};

enum class Method { device, per_page };

struct Variant {
    const char* name;
    mem::Backing backing;
    bool shuffled;
    Method method;
};

struct RunResult {
    double seconds = 0;
    uint64_t discards = 0;
    int64_t rss_drop_kib = 0;
};

// Counts notifications; the benchmark has no guest to interrupt.
class NullInterrupt final : public dv::VirtioInterrupt {
public:
    void signal_used_queue(uint16_t) override { ++used; }
    void signal_config_change() override {}
    void set_device_needs_reset() override { needs_reset = true; }
    std::atomic<uint64_t> used{0};
    std::atomic<bool> needs_reset{false};
};

// "Key:   1234 kB" from a /proc file, in KiB; -1 when absent.
int64_t proc_kib(const char* file, const char* key) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + std::strlen(key));
    }
    return -1;
}

// PFNs of `pages` RAM pages from kInflateBase on, walking the RAM regions.
Result<std::vector<uint32_t>> inflate_pfns(const mem::GuestMemory& m, uint64_t pages,
                                           bool shuffled) {
    std::vector<uint32_t> pfns;
    pfns.reserve(pages);
    for (const mem::GuestRegion& r : m.regions()) {
        uint64_t addr = std::max(r.start().raw, kInflateBase);
        for (; addr < r.start().raw + r.size() && pfns.size() < pages; addr += mem::kPageSize) {
            pfns.push_back(static_cast<uint32_t>(addr >> balloon::kBalloonPfnShift));
        }
    }
    if (pfns.size() < pages) {
        return Error::msg("guest RAM is too small: {} MiB needed above {} MiB",
                          pages * mem::kPageSize >> 20, kInflateBase >> 20);
    }
    if (shuffled) std::shuffle(pfns.begin(), pfns.end(), std::mt19937_64(42));
    return pfns;
}

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Hands every PFN to the device; returns the seconds spent in process_queue.
Result<double> inflate_with_device(const mem::GuestMemory& m, std::span<const uint32_t> pfns,
                                   uint64_t& discards) {
    auto dev = VMM_TRY(balloon::VirtioBalloon::create({}, m.total_size()));
    bench::BenchRing ring(m, balloon::kBalloonQueueSize, kRingBase);
    VMM_TRY(ring.zero());
    auto irq = std::make_shared<NullInterrupt>();
    dv::ActivateContext ctx;
    ctx.memory = &m;
    ctx.queues.push_back(ring.make_queue());
    ctx.queues.emplace_back(balloon::kBalloonQueueSize);  // deflate: not set up
    ctx.acked_features = dv::kFeatureVersion1;
    ctx.interrupt = irq;
    VMM_TRY(ctx.queues[0].validate(m));
    VMM_TRY(dev->activate(std::move(ctx)));

    constexpr size_t kPerChain = balloon::kMaxPfnsPerDescriptor;
    double seconds = 0;
    for (size_t next = 0; next < pfns.size();) {
        // Write one batch (up to queue-size chains), untimed, as the driver would.
        for (uint64_t slot = 0; slot < balloon::kBalloonQueueSize && next < pfns.size(); ++slot) {
            auto chunk = pfns.subspan(next, std::min(kPerChain, pfns.size() - next));
            uint64_t addr = kPfnArrayBase + slot * kPerChain * sizeof(uint32_t);
            VMM_TRY(m.write(mem::GuestAddress(addr), std::as_bytes(chunk)));
            VMM_TRY(ring.add(addr, static_cast<uint32_t>(chunk.size_bytes())));
            next += chunk.size();
        }
        VMM_TRY(ring.publish());
        auto t0 = std::chrono::steady_clock::now();
        dev->process_queue(0);
        seconds += since(t0);
        if (VMM_TRY(ring.used_idx()) != ring.avail_idx() || irq->needs_reset) {
            return Error::msg("the device did not complete the batch");
        }
    }
    balloon::BalloonCounters c = dev->counter_values();
    if (c.pages_inflated != pfns.size() || c.bad_pfns != 0) {
        return Error::msg("device counted {} pages inflated, {} bad; expected {}",
                          c.pages_inflated, c.bad_pfns, pfns.size());
    }
    discards = c.inflate_discard_calls;
    return seconds;
}

Result<RunResult> run_once(const Options& opt, const Variant& v) {
    auto layout = mem::x86_64::ram_layout(opt.ram_mib * mem::x86_64::MiB);
    mem::MappingOptions mapping{.backing = v.backing, .transparent_huge_pages = true,
                                .prefault = false};
    auto m = VMM_TRY(mem::GuestMemory::create(layout, mapping));
    auto pfns = VMM_TRY(inflate_pfns(m, opt.size_mib * mem::x86_64::MiB / mem::kPageSize,
                                     v.shuffled));
    // Fault in: write every page (contiguously, so THP can back the anonymous RAM).
    std::vector<uint32_t> sorted(pfns);
    std::sort(sorted.begin(), sorted.end());
    for (uint32_t pfn : sorted) {
        VMM_TRY(m.write_obj(mem::GuestAddress(uint64_t{pfn} << balloon::kBalloonPfnShift), kMarker));
    }
    // The ring and PFN arrays live below kInflateBase: fault them in before the RSS
    // sample so that only the balloon's pages move it.
    VMM_TRY(m.fill(mem::GuestAddress(0), kInflateBase, std::byte{0}));
    RunResult r;
    int64_t rss_before = proc_kib("/proc/self/status", "VmRSS:");
    if (v.method == Method::device) {
        r.seconds = VMM_TRY(inflate_with_device(m, pfns, r.discards));
    } else {
        auto t0 = std::chrono::steady_clock::now();
        for (uint32_t pfn : pfns) {
            VMM_TRY(m.discard(mem::GuestAddress(uint64_t{pfn} << balloon::kBalloonPfnShift), mem::kPageSize));
        }
        r.seconds = since(t0);
        r.discards = pfns.size();
    }
    r.rss_drop_kib = rss_before - proc_kib("/proc/self/status", "VmRSS:");
    // Every page held kMarker at offset 0: a page that was not discarded still does.
    for (uint32_t pfn : sorted) {
        if (VMM_TRY(m.read_obj<uint64_t>(mem::GuestAddress(uint64_t{pfn} << balloon::kBalloonPfnShift))) != 0) {
            return Error::msg("pfn {:#x} does not read back as zero", pfn);
        }
    }
    // Allow 1% slack for unrelated allocations of this process.
    if (r.rss_drop_kib < static_cast<int64_t>(opt.size_mib * 1024 * 99 / 100)) {
        return Error::msg("VmRSS dropped by {} KiB only, expected ~{} KiB", r.rss_drop_kib,
                          opt.size_mib * 1024);
    }
    return r;
}

bool parse_u64(const char* s, uint64_t& out) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') return false;
    out = v;
    return true;
}

Result<Options> parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        uint64_t v = 0;
        if (i + 1 >= argc || !parse_u64(argv[i + 1], v) || v == 0) {
            return Error::msg("usage: {} [--size-mib N] [--ram-mib N] [--runs N] "
                              "(positive integers; bad or missing value for '{}')",
                              argv[0], arg);
        }
        ++i;
        if (arg == "--size-mib") o.size_mib = v;
        else if (arg == "--ram-mib") o.ram_mib = v;
        else if (arg == "--runs" && v <= 100) o.runs = static_cast<unsigned>(v);
        else return Error::msg("unknown option or out-of-range value: {}", arg);
    }
    if (o.ram_mib > 1024 * 1024) return Error::msg("--ram-mib: at most 1 TiB");
    if (o.size_mib + (kInflateBase >> 20) > o.ram_mib) {
        return Error::msg("--size-mib {} does not fit: guest RAM is {} MiB and the first {} MiB "
                          "hold the ring", o.size_mib, o.ram_mib, kInflateBase >> 20);
    }
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    auto opt = parse(argc, argv);
    if (!opt) {
        fmt::print(stderr, "{}\n", opt.error().message());
        return 2;
    }
    const Variant variants[] = {
        {"anon   device    contiguous", mem::Backing::anonymous, false, Method::device},
        {"anon   per-page  contiguous", mem::Backing::anonymous, false, Method::per_page},
        {"anon   device    shuffled  ", mem::Backing::anonymous, true, Method::device},
        {"anon   per-page  shuffled  ", mem::Backing::anonymous, true, Method::per_page},
        {"memfd  device    contiguous", mem::Backing::memfd, false, Method::device},
        {"memfd  per-page  contiguous", mem::Backing::memfd, false, Method::per_page},
    };
    std::string thp = "?";
    if (std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled"); f) std::getline(f, thp);
    fmt::print("balloon inflate: {} MiB of {} MiB guest RAM, median of {} runs, {} PFNs per "
               "descriptor, queue size {}, THP: {}\n", opt->size_mib, opt->ram_mib, opt->runs,
               balloon::kMaxPfnsPerDescriptor, balloon::kBalloonQueueSize, thp);
    fmt::print("{:<28} {:>9} {:>19} {:>9} {:>10}\n", "backing method   PFN order", "GiB/s",
               "(min .. max)", "discards", "RSS drop");
    // Runs interleave the variants, so that load from other processes on the host
    // affects every variant alike and the ratios stay meaningful.
    constexpr size_t kVariants = std::size(variants);
    std::vector<RunResult> results[kVariants];
    for (unsigned i = 0; i < opt->runs; ++i) {
        for (size_t v = 0; v < kVariants; ++v) {
            auto r = run_once(*opt, variants[v]);
            if (!r) {
                fmt::print(stderr, "{}: run {}: {}\n", variants[v].name, i + 1, r.error().message());
                return 1;
            }
            results[v].push_back(*r);
        }
    }
    std::vector<double> medians;
    for (size_t v = 0; v < kVariants; ++v) {
        auto& rs = results[v];
        std::sort(rs.begin(), rs.end(),
                  [](const RunResult& a, const RunResult& b) { return a.seconds < b.seconds; });
        double gib = static_cast<double>(opt->size_mib) / 1024.0;
        double median = rs[rs.size() / 2].seconds;
        medians.push_back(gib / median);
        fmt::print("{:<28} {:>9.2f} ({:>7.2f} .. {:>7.2f}) {:>9} {:>6} MiB\n", variants[v].name,
                   gib / median, gib / rs.back().seconds, gib / rs.front().seconds,
                   rs.front().discards, rs.front().rss_drop_kib / 1024);
    }
    fmt::print("ratios (device / per-page baseline): anon contiguous {:.1f}x, anon shuffled "
               "{:.1f}x, memfd contiguous {:.1f}x\n", medians[0] / medians[1],
               medians[2] / medians[3], medians[4] / medians[5]);
    fmt::print("every run: all pages read back as zero, VmRSS dropped by >= 99% of the size\n");
    return 0;
}
