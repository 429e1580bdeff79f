// The automatic balloon controller with a fake balloon and a PSI file the test
// writes (a plain file: the source reads it every tick), on a real event loop and
// a clock the test sets.
#include <catch2/catch.hpp>

#include <sys/epoll.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "balloon/hyperalloc/hyperalloc_device.h"
#include "balloon/virtio_balloon.h"
#include "common/log.h"
#include "vmm/auto_balloon.h"

using namespace vmm;
using namespace std::chrono_literals;
namespace ab = vmm::balloon::auto_balloon;
using std::chrono::milliseconds;

namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t kRam = 4096 * MiB;

constexpr const char* kIdle = "some avg10=0.00 avg60=0.00 avg300=0.00 total=10\n"
                              "full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n";
constexpr const char* kPressure = "some avg10=25.00 avg60=8.00 avg300=2.00 total=900000\n"
                                  "full avg10=4.00 avg60=1.00 avg300=0.50 total=100000\n";

// A balloon that follows the target at once (or not, if `follow` is false).
struct FakeBalloon {
    uint64_t target = 0;
    uint64_t actual = 0;
    bool follow = true;
    std::optional<ab::GuestStats> guest;
    std::optional<double> installs_per_s;
    std::vector<uint64_t> targets_set;
    std::vector<uint64_t> soft_set;
    bool refuse = false;
};

class FakePort final : public AutoBalloonPort {
public:
    explicit FakePort(FakeBalloon& b) : m_b(b) {}
    Reading read(milliseconds) override {
        return Reading{m_b.target, m_b.actual, m_b.guest, m_b.installs_per_s};
    }
    vmm::Result<void> set_target(uint64_t bytes) override {
        if (m_b.refuse) return vmm::Error::msg("refused");
        m_b.targets_set.push_back(bytes);
        m_b.target = bytes;
        if (m_b.follow) m_b.actual = bytes;
        return vmm::ok();
    }
    vmm::Result<void> set_soft_reclaim(uint64_t bytes) override {
        m_b.soft_set.push_back(bytes);
        return vmm::ok();
    }

private:
    FakeBalloon& m_b;
};

struct TempPsi {
    TempPsi() {
        char name[] = "/tmp/auto_balloon_psi.XXXXXX";
        int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        ::close(fd);
        path = name;
        write(kIdle);
    }
    ~TempPsi() { ::unlink(path.c_str()); }
    void write(const std::string& text) const { std::ofstream(path, std::ios::trunc) << text; }
    std::string path;
};

// Captures the log at info level while alive.
struct LogCapture {
    LogCapture() : file(std::tmpfile()), old_level(vmm::log::level()) {
        vmm::log::set_sink(file);
        vmm::log::set_level(vmm::log::Level::info);
    }
    ~LogCapture() {
        vmm::log::set_sink(nullptr);
        vmm::log::set_level(old_level);
        std::fclose(file);
    }
    std::string text() const {
        std::fflush(file);
        std::rewind(file);
        std::string out;
        char buf[4096];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof(buf), file)) > 0) out.append(buf, n);
        return out;
    }
    std::FILE* file;
    vmm::log::Level old_level;
};

ab::AutoBalloonOptions options_for(const TempPsi& psi, ab::BalloonKind kind = ab::BalloonKind::virtio_balloon) {
    ab::AutoBalloonOptions o;
    o.policy.kind = kind;
    o.policy.step_bytes = 256 * MiB;
    o.policy.floor_bytes = 512 * MiB;
    o.policy.hysteresis = 20s;
    o.policy.tick = 1s;
    o.policy.stats_max_age = 5s;
    o.psi.path = psi.path;
    return o;
}

ab::GuestStats roomy(milliseconds at) {
    ab::GuestStats g;
    g.available_bytes = 3000 * MiB;
    g.total_bytes = kRam;
    g.major_faults = 0;
    g.alloc_stalls = 0;
    g.sampled_at = at;
    return g;
}

EventLoop make_loop() {
    auto loop = EventLoop::create();
    REQUIRE(loop);
    return std::move(*loop);
}

struct Rig {
    explicit Rig(ab::BalloonKind kind = ab::BalloonKind::virtio_balloon) : loop(make_loop()) {
        auto c = AutoBalloonController::create(options_for(psi, kind), std::make_unique<FakePort>(balloon), kRam, loop,
                                               [this] { return now; });
        if (!c) FAIL(c.error().message());
        controller = std::move(*c);
    }
    void at(milliseconds t) {
        now = t;
        if (balloon.guest) balloon.guest->sampled_at = t;
        controller->tick();
    }
    TempPsi psi;
    FakeBalloon balloon;
    EventLoop loop;
    milliseconds now{0};
    std::unique_ptr<AutoBalloonController> controller;
};

}  // namespace

TEST_CASE("host pressure inflates the balloon one step per tick and says why", "[auto_balloon]") {
    LogCapture log;
    Rig rig;
    CHECK(rig.balloon.targets_set.empty());  // the first tick, at creation, had no guest statistics
    rig.balloon.guest = roomy(0ms);
    rig.psi.write(kPressure);
    rig.at(1s);
    rig.at(2s);
    rig.at(3s);
    CHECK(rig.balloon.targets_set == std::vector<uint64_t>{256 * MiB, 512 * MiB, 768 * MiB});
    CHECK(rig.balloon.soft_set.empty());  // the virtio-balloon has no soft reclaim

    AutoBalloonInfo info = rig.controller->info();
    CHECK(info.psi_path == rig.psi.path);
    CHECK(info.psi_mode == "periodic");  // a plain file takes no trigger
    REQUIRE(info.last_psi);
    CHECK(info.last_psi->some_avg10 == 25.0);
    CHECK(info.last_psi->full_avg10 == 4.0);
    CHECK(info.ticks == 4);
    CHECK(info.inflates == 3);
    CHECK(info.host_pressure);
    REQUIRE(info.last_action);
    CHECK(info.last_action->action == "inflate");
    CHECK(info.last_action->target_bytes == 768 * MiB);
    CHECK(info.last_action->at_s == 3.0);
    CHECK(info.step_bytes == 256 * MiB);
    CHECK(info.guest_available_bytes == 3000 * MiB);

    std::string text = log.text();
    CHECK(text.find("auto-balloon t=1.0s inflate: host PSI some avg10 25.00% > 10%: inflate by 256 MiB to 256 MiB") !=
          std::string::npos);
    CHECK(text.find("auto-balloon t=3.0s inflate:") != std::string::npos);
}

TEST_CASE("guest pressure deflates at once and blocks inflates during hysteresis", "[auto_balloon]") {
    LogCapture log;
    Rig rig;
    rig.balloon.guest = roomy(0ms);
    rig.psi.write(kPressure);
    rig.at(1s);
    rig.at(2s);
    REQUIRE(rig.balloon.target == 512 * MiB);

    // The guest runs short: 100 MiB available (< 10% of 4 GiB).
    rig.balloon.guest->available_bytes = 100 * MiB;
    rig.at(3s);
    CHECK(rig.balloon.target < 512 * MiB);
    uint64_t after_deflate = rig.balloon.target;
    AutoBalloonInfo info = rig.controller->info();
    CHECK(info.deflates == 1);
    CHECK(info.guest_pressure);
    CHECK(info.in_hysteresis);
    CHECK(info.in_hysteresis_until_s == 23.0);

    // Pressure gone in the guest, host still pressed: no inflate until t=23 s.
    rig.balloon.guest->available_bytes = 3000 * MiB;
    for (auto t : {4s, 10s, 22s}) rig.at(t);
    CHECK(rig.balloon.target == after_deflate);
    CHECK(rig.controller->info().last_decision->reason.find("hysteresis") != std::string::npos);
    rig.at(23s);
    CHECK(rig.balloon.target == after_deflate + 256 * MiB);
    CHECK_FALSE(rig.controller->info().in_hysteresis);

    std::string text = log.text();
    CHECK(text.find("auto-balloon t=3.0s deflate: guest available 100 MiB < 409.6 MiB") != std::string::npos);
    // Holds are debug lines: absent at info level.
    CHECK(text.find("t=10.0s none") == std::string::npos);
}

TEST_CASE("guest pressure cancels an inflate the guest has not finished", "[auto_balloon]") {
    Rig rig;
    rig.balloon.follow = false;  // the guest lags behind
    rig.balloon.guest = roomy(0ms);
    rig.psi.write(kPressure);
    rig.at(1s);
    REQUIRE(rig.balloon.target == 256 * MiB);
    rig.balloon.actual = 100 * MiB;
    rig.balloon.guest->major_faults = 0;
    rig.at(2s);  // a second inflate: the guest is at most a step behind
    REQUIRE(rig.balloon.target == 512 * MiB);
    rig.balloon.guest->major_faults = 5000;  // 5000/s since the last sample
    rig.at(3s);
    AutoBalloonInfo info = rig.controller->info();
    CHECK(info.cancels == 1);
    CHECK(info.last_action->action == "cancel_inflate");
    CHECK(rig.balloon.target == 0);  // from actual 100 MiB, deflated by a step
    CHECK(info.major_faults_per_s == 5000.0);
}

TEST_CASE("stale or missing guest statistics never inflate", "[auto_balloon]") {
    Rig rig;
    rig.psi.write(kPressure);
    rig.at(1s);
    CHECK(rig.balloon.targets_set.empty());
    rig.balloon.guest = roomy(0ms);
    rig.now = 10s;  // the report is 10 s old, stats_max_age is 5 s
    rig.controller->tick();
    CHECK(rig.balloon.targets_set.empty());
    CHECK(rig.controller->info().last_decision->reason.find("no fresh guest statistics") != std::string::npos);
}

TEST_CASE("an unreadable PSI file is reported and treated as no host signal", "[auto_balloon]") {
    Rig rig;
    rig.balloon.guest = roomy(0ms);
    rig.psi.write("this is not PSI\n");
    rig.at(1s);
    CHECK(rig.balloon.targets_set.empty());
    AutoBalloonInfo info = rig.controller->info();
    REQUIRE(info.psi_error);
    CHECK_FALSE(info.host_pressure);
    rig.psi.write(kPressure);
    rig.at(2s);
    CHECK_FALSE(rig.controller->info().psi_error);
    CHECK(rig.balloon.target == 256 * MiB);
}

TEST_CASE("a refused target is counted and logged", "[auto_balloon]") {
    LogCapture log;
    Rig rig;
    rig.balloon.guest = roomy(0ms);
    rig.balloon.refuse = true;
    rig.psi.write(kPressure);
    rig.at(1s);
    CHECK(rig.controller->info().apply_errors == 1);
    CHECK(log.text().find("auto-balloon: setting the target to 256 MiB: refused") != std::string::npos);
}

TEST_CASE("HyperAlloc: soft reclaim is set only when it changes", "[auto_balloon]") {
    LogCapture log;
    Rig rig(ab::BalloonKind::hyperalloc);
    // At creation: calm, the policy's default ration per pass.
    REQUIRE(rig.balloon.soft_set == std::vector<uint64_t>{256 * MiB});
    rig.balloon.guest = roomy(0ms);
    rig.balloon.installs_per_s = 0;
    rig.at(1s);
    CHECK(rig.balloon.soft_set.size() == 1);  // unchanged: not set again
    rig.psi.write(kPressure);
    rig.at(2s);
    CHECK(rig.balloon.soft_set.back() == ab::kSoftReclaimUnlimited);
    CHECK(rig.balloon.target == 256 * MiB);
    rig.balloon.installs_per_s = 500;  // the guest takes frames back fast
    rig.at(3s);
    CHECK(rig.balloon.soft_set.back() == 0);
    CHECK(rig.balloon.target == 0);
    AutoBalloonInfo info = rig.controller->info();
    CHECK(info.installs_per_s == 500.0);
    CHECK(info.last_decision->soft_reclaim_bytes == 0u);
    CHECK(log.text().find("HyperAlloc installs 500/s > 64/s") != std::string::npos);
    CHECK(log.text().find("soft reclaim stopped") != std::string::npos);
}

TEST_CASE("the tick timer runs the policy from the event loop", "[auto_balloon]") {
    TempPsi psi;
    FakeBalloon balloon;
    auto loop = EventLoop::create();
    REQUIRE(loop);
    ab::AutoBalloonOptions o = options_for(psi);
    o.policy.tick = 100ms;
    o.policy.stats_max_age = 1s;
    auto c = AutoBalloonController::create(o, std::make_unique<FakePort>(balloon), kRam, *loop);
    REQUIRE(c);
    CHECK((*c)->info().ticks == 1);
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while ((*c)->info().ticks < 3 && std::chrono::steady_clock::now() < deadline) REQUIRE(loop->run_once(200));
    CHECK((*c)->info().ticks >= 3);
    // Destroying the controller takes its timer off the loop.
    c->reset();
    REQUIRE(loop->run_once(250));
}

TEST_CASE("a PSI path that does not exist is an error; the system file opens", "[auto_balloon]") {
    FakeBalloon balloon;
    auto loop = EventLoop::create();
    REQUIRE(loop);
    TempPsi psi;
    ab::AutoBalloonOptions o = options_for(psi);
    o.psi.path = "/nonexistent/memory.pressure";
    auto bad = AutoBalloonController::create(o, std::make_unique<FakePort>(balloon), kRam, *loop);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message().find("/nonexistent/memory.pressure") != std::string::npos);

    if (::access("/proc/pressure/memory", R_OK) != 0) return;  // a kernel without PSI
    o.psi.path = ab::kSystemMemoryPressure;
    auto system = AutoBalloonController::create(o, std::make_unique<FakePort>(balloon), kRam, *loop);
    REQUIRE(system);
    AutoBalloonInfo info = (*system)->info();
    // Root (or Linux >= 6.5) gets the trigger; otherwise the file is read each tick.
    CHECK((info.psi_mode == "trigger" || info.psi_mode == "periodic"));
    CHECK_FALSE(info.psi_mode_reason.empty());
    CHECK(info.last_psi.has_value());
}

TEST_CASE("the HyperAlloc port maps soft reclaim onto the device", "[auto_balloon]") {
    balloon::hyperalloc::HyperAllocOptions o;
    o.auto_mode = true;
    auto device = balloon::hyperalloc::HyperAllocDevice::create(o, 1024 * MiB);
    REQUIRE(device);
    auto port = make_auto_balloon_port(*device);
    REQUIRE(port->set_soft_reclaim(0));
    CHECK((*device)->stats().auto_paused);
    // A limit that is not whole frames is rounded up, never down to "no limit".
    REQUIRE(port->set_soft_reclaim(1));
    CHECK_FALSE((*device)->stats().auto_paused);
    CHECK((*device)->stats().auto_limit_bytes == 2 * MiB);
    REQUIRE(port->set_soft_reclaim(5 * MiB));
    CHECK((*device)->stats().auto_limit_bytes == 6 * MiB);
    REQUIRE(port->set_soft_reclaim(ab::kSoftReclaimUnlimited));
    CHECK((*device)->stats().auto_limit_bytes == 0);
    REQUIRE(port->set_soft_reclaim(0));
    REQUIRE(port->set_soft_reclaim(UINT64_MAX - 1));  // huge: no limit rather than an overflow
    CHECK((*device)->stats().auto_limit_bytes == 0);
    CHECK_FALSE((*device)->stats().auto_paused);

    // Before the guest reported its zones there is no signal to act on.
    auto r = port->read(1s);
    CHECK_FALSE(r.guest);
    CHECK_FALSE(r.installs_per_s);
    REQUIRE(port->set_target(64 * MiB));
    CHECK(port->read(2s).target_bytes == 64 * MiB);
    CHECK(port->read(2s).actual_bytes == 0);
}

TEST_CASE("the virtio-balloon port reads targets in pages and no statistics before any", "[auto_balloon]") {
    balloon::BalloonOptions o;
    o.target_bytes = 8 * MiB;
    o.stats_polling_interval_s = 2;
    auto device = balloon::VirtioBalloon::create(o, 1024 * MiB);
    REQUIRE(device);
    auto port = make_auto_balloon_port(*device);
    auto r = port->read(1s);
    CHECK(r.target_bytes == 8 * MiB);
    CHECK(r.actual_bytes == 0);
    CHECK_FALSE(r.guest);
    CHECK_FALSE(r.installs_per_s);
    REQUIRE(port->set_target(12 * MiB));
    CHECK((*device)->target_pages() == 3072);
    CHECK(port->set_soft_reclaim(0));  // nothing to ration
}
