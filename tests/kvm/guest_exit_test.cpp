// How Vm::run() reports the guest's own ends: a triple fault is an error naming
// it, a guest reset (i8042) is a clean reset after the guest's work is done.
#include <catch2/catch.hpp>
#include <string>

#include "guest_run.h"

namespace vmm::test {

TEST_CASE("a triple-faulting guest ends run with an error naming the triple fault") {
    GuestRun run("triple-fault", 1, 64);
    run.start();
    auto result = run.wait_exit(60s);
    INFO("serial output: " << run.output());
    REQUIRE(result.has_value());
    INFO("run(): " << (*result ? std::string("ok") : result->error().message()));
    REQUIRE(result->has_value());
    CHECK((*result)->kind == VmExitKind::error);
    INFO("reason: " << (*result)->reason);
    CHECK((*result)->reason.find("triple fault") != std::string::npos);
    CHECK(run.output().find("TESTGUEST: mode triple-fault") != std::string::npos);
}

TEST_CASE("the compute guest ends run with a reset after printing its result") {
    GuestRun run("compute", 1, 128);
    run.start();
    auto result = run.wait_exit(120s);
    std::string out = run.output();
    INFO("serial output: " << out);
    REQUIRE(result.has_value());
    INFO("run(): " << (*result ? std::string("ok") : result->error().message()));
    REQUIRE(result->has_value());
    CHECK((*result)->kind == VmExitKind::reset);
    CHECK(out.find("TESTGUEST: compute ok primes below 10000000: 664579 ") != std::string::npos);
    CHECK(out.find("TESTGUEST: done") != std::string::npos);
    CHECK(out.find("TESTGUEST: FAIL") == std::string::npos);
}

}  // namespace vmm::test
