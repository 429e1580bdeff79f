// Vm::pause()/resume() on a running guest: the counter guest (tests/guest, mode
// counter) increments a 64-bit value in guest memory at CPL3 without end, so a
// paused VM is one whose counter stands still and a resumed one counts again.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "guest_run.h"

namespace vmm::test {
namespace {

constexpr auto kBootLimit = 10s;      // boot to a moving counter (~0.2 s measured)
constexpr auto kMoveLimit = 5s;       // a resumed guest counts again
constexpr auto kCallLimit = 5s;       // one pause()/resume() call
constexpr auto kStandStill = 300ms;   // how long a paused counter is watched
constexpr uint64_t kCounterMemoryMib = 64;

bool all_states(const Vm& vm, Vcpu::State want) {
    auto states = vm.vcpu_states();
    if (states.empty()) return false;
    for (auto s : states)
        if (s != want) return false;
    return true;
}

void pause_vm(GuestRun& run) { bounded("Vm::pause()", kCallLimit, [&] { run.vm().pause(); }); }
void resume_vm(GuestRun& run) { bounded("Vm::resume()", kCallLimit, [&] { run.vm().resume(); }); }

void boot_counter(GuestRun& run) {
    run.start();
    INFO("serial output: " << run.output());
    REQUIRE(run.wait_counter_above(0, kBootLimit));
}

// Ends the VM with a poweroff request and checks how run() reports it.
void power_off(GuestRun& run) {
    run.vm().request_exit(VmExitKind::poweroff, "test poweroff");
    auto result = run.wait_exit(10s);
    REQUIRE(result.has_value());
    INFO("run(): " << (*result ? std::string("ok") : result->error().message()));
    REQUIRE(result->has_value());
    CHECK((*result)->kind == VmExitKind::poweroff);
    CHECK((*result)->reason == "test poweroff");
    CHECK(all_states(run.vm(), Vcpu::State::stopped));
}

void check_pause_resume(unsigned cpus) {
    GuestRun run("counter", cpus, kCounterMemoryMib);
    boot_counter(run);
    REQUIRE(run.vm().vcpu_states().size() == cpus);
    CHECK(all_states(run.vm(), Vcpu::State::running));

    pause_vm(run);
    CHECK(all_states(run.vm(), Vcpu::State::paused));
    uint64_t frozen = run.counter();
    std::this_thread::sleep_for(kStandStill);
    CHECK(run.counter() == frozen);
    CHECK(all_states(run.vm(), Vcpu::State::paused));

    resume_vm(run);
    CHECK(all_states(run.vm(), Vcpu::State::running));
    CHECK(run.wait_counter_above(frozen, kMoveLimit));

    std::string out = run.output();
    INFO("serial output: " << out);
    CHECK(out.find("TESTGUEST: mode counter") != std::string::npos);
    CHECK(out.find("TESTGUEST: counter running") != std::string::npos);
    CHECK(out.find("TESTGUEST: FAIL") == std::string::npos);
    power_off(run);
}

}  // namespace

TEST_CASE("pause freezes and resume restarts a 1-vCPU guest") { check_pause_resume(1); }

// The second vCPU is never started by the guest (wait-for-SIPI, blocked in KVM_RUN):
// pausing must get it out of KVM_RUN too.
TEST_CASE("pause freezes and resume restarts a 2-vCPU guest with an idle AP") { check_pause_resume(2); }

TEST_CASE("a VM paused before run does not execute until resumed") {
    GuestRun run("counter", 1, kCounterMemoryMib);
    pause_vm(run);
    run.start();
    std::this_thread::sleep_for(kStandStill);
    CHECK(all_states(run.vm(), Vcpu::State::paused));
    CHECK(run.counter() == 0);
    // Not one guest instruction ran: not even the mode line was printed.
    CHECK(run.output().empty());

    resume_vm(run);
    CHECK(all_states(run.vm(), Vcpu::State::running));
    INFO("serial output: " << run.output());
    CHECK(run.wait_counter_above(0, kBootLimit));
    power_off(run);
}

TEST_CASE("repeated pause and resume cycles never hang and the count only grows") {
    GuestRun run("counter", 2, kCounterMemoryMib);
    boot_counter(run);

    // Slow cycles: the counter stands still in every pause and moves after every resume.
    uint64_t previous = 0;
    for (int cycle = 0; cycle < 50; ++cycle) {
        INFO("cycle " << cycle);
        pause_vm(run);
        REQUIRE(all_states(run.vm(), Vcpu::State::paused));
        uint64_t frozen = run.counter();
        REQUIRE(frozen >= previous);
        std::this_thread::sleep_for(2ms);
        REQUIRE(run.counter() == frozen);
        resume_vm(run);
        REQUIRE(all_states(run.vm(), Vcpu::State::running));
        REQUIRE(run.wait_counter_above(frozen, kMoveLimit));
        previous = frozen;
    }

    // Back-to-back cycles: races between the kick and the vCPU's own exits.
    for (int cycle = 0; cycle < 200; ++cycle) {
        INFO("fast cycle " << cycle);
        pause_vm(run);
        uint64_t frozen = run.counter();
        REQUIRE(frozen >= previous);
        previous = frozen;
        resume_vm(run);
    }
    CHECK(run.wait_counter_above(previous, kMoveLimit));
    power_off(run);
}

}  // namespace vmm::test

namespace vmm::test {

TEST_CASE("a paused VM can be powered off without resuming it") {
    GuestRun run("counter", 2, kCounterMemoryMib);
    boot_counter(run);
    pause_vm(run);
    REQUIRE(all_states(run.vm(), Vcpu::State::paused));
    uint64_t frozen = run.counter();
    run.vm().request_exit(VmExitKind::poweroff, "poweroff while paused");
    auto result = run.wait_exit(10s);
    REQUIRE(result.has_value());
    REQUIRE(result->has_value());
    CHECK((*result)->kind == VmExitKind::poweroff);
    CHECK((*result)->reason == "poweroff while paused");
    CHECK(all_states(run.vm(), Vcpu::State::stopped));
    CHECK(run.counter() == frozen);   // it never ran again
    // After the end, pause()/resume() are no-ops and must not block.
    pause_vm(run);
    resume_vm(run);
    CHECK(all_states(run.vm(), Vcpu::State::stopped));
}

// Regression: Vcpu::resume() used to wait for a vCPU thread that run() had not started.
TEST_CASE("pause then resume before run do not block", "[pause]") {
    GuestRun run("counter", 1, kCounterMemoryMib);
    CHECK(all_states(run.vm(), Vcpu::State::created));
    pause_vm(run);
    CHECK(all_states(run.vm(), Vcpu::State::paused));
    resume_vm(run);
    CHECK(all_states(run.vm(), Vcpu::State::created));
    run.start();
    CHECK(run.wait_counter_above(0, kBootLimit));
}

}  // namespace vmm::test
