#include <catch2/catch.hpp>

#include <cerrno>

#include "common/event_fd.h"
#include "common/log.h"
#include "common/result.h"

namespace {
vmm::Result<int> parse_positive(int v) {
    if (v <= 0) return vmm::Error::msg("{} is not positive", v);
    return v;
}
vmm::Result<int> doubled(int v) {
    int x = VMM_TRY(parse_positive(v));
    return 2 * x;
}
vmm::Result<int> with_context(int v) {
    int x = VMM_TRY_CTX(parse_positive(v), "reading the count");
    return x;
}
}  // namespace

TEST_CASE("Result carries a value or an error, VMM_TRY propagates", "[result]") {
    auto good = doubled(21);
    REQUIRE(good);
    CHECK(*good == 42);
    auto bad = doubled(-1);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message() == "-1 is not positive");
    auto ctx = with_context(0);
    REQUIRE_FALSE(ctx);
    CHECK(ctx.error().message() == "reading the count: 0 is not positive");
}

TEST_CASE("errors from errno keep the errno value", "[result]") {
    errno = ENOENT;
    auto e = vmm::Error::from_errno("open /x");
    CHECK(e.errno_value() == ENOENT);
    CHECK(e.message() == "open /x: No such file or directory");
    CHECK(e.context("kernel").errno_value() == ENOENT);
}

TEST_CASE("eventfd counts signals and reads back zero when clear", "[event_fd]") {
    auto e = vmm::EventFd::create();
    REQUIRE(e);
    REQUIRE(e->signal());
    REQUIRE(e->signal());
    auto n = e->consume();
    REQUIRE(n);
    CHECK(*n == 2);
    auto none = e->consume();
    REQUIRE(none);
    CHECK(*none == 0);
}

TEST_CASE("the rate limiter lets a burst through and counts the rest", "[log]") {
    vmm::log::RateLimiter limiter(3, std::chrono::hours(1));
    int allowed = 0;
    for (int i = 0; i < 10; ++i) allowed += limiter.allow() ? 1 : 0;
    CHECK(allowed == 3);
    CHECK(limiter.suppressed() == 7);
}
