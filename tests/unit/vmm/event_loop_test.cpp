#include <catch2/catch.hpp>

#include <sys/epoll.h>

#include "common/event_fd.h"
#include "vmm/event_loop.h"
#include "vmm/exit_notifier.h"

using vmm::EventFd;
using vmm::EventLoop;

TEST_CASE("event loop dispatches ready fds to their handlers", "[event_loop]") {
    auto loop = EventLoop::create();
    REQUIRE(loop);
    auto a = EventFd::create();
    auto b = EventFd::create();
    REQUIRE((a && b));
    int a_calls = 0, b_calls = 0;
    REQUIRE(loop->add(a->fd(), EPOLLIN, [&](uint32_t) { ++a_calls; (void)a->consume(); }));
    REQUIRE(loop->add(b->fd(), EPOLLIN, [&](uint32_t) { ++b_calls; (void)b->consume(); }));

    REQUIRE(a->signal());
    REQUIRE(loop->run_once(1000));
    CHECK(a_calls == 1);
    CHECK(b_calls == 0);

    // Nothing ready: returns after the timeout without dispatching.
    REQUIRE(loop->run_once(10));
    CHECK(a_calls == 1);
}

TEST_CASE("a handler may remove its own fd", "[event_loop]") {
    auto loop = EventLoop::create();
    auto e = EventFd::create();
    REQUIRE((loop && e));
    int calls = 0;
    REQUIRE(loop->add(e->fd(), EPOLLIN, [&](uint32_t) {
        ++calls;
        REQUIRE(loop->remove(e->fd()));
    }));
    REQUIRE(e->signal());
    REQUIRE(loop->run_once(1000));
    REQUIRE(loop->run_once(10));  // still readable, but no longer watched
    CHECK(calls == 1);
}

TEST_CASE("modify to no events stops dispatch until re-enabled", "[event_loop]") {
    auto loop = EventLoop::create();
    auto e = EventFd::create();
    REQUIRE((loop && e));
    int calls = 0;
    REQUIRE(loop->add(e->fd(), EPOLLIN, [&](uint32_t) { ++calls; }));
    REQUIRE(e->signal());
    REQUIRE(loop->modify(e->fd(), 0));
    REQUIRE(loop->run_once(10));
    CHECK(calls == 0);
    REQUIRE(loop->modify(e->fd(), EPOLLIN));
    REQUIRE(loop->run_once(1000));
    CHECK(calls == 1);
}

TEST_CASE("adding an fd twice or removing an unknown fd is an error", "[event_loop]") {
    auto loop = EventLoop::create();
    auto e = EventFd::create();
    REQUIRE((loop && e));
    REQUIRE(loop->add(e->fd(), EPOLLIN, [](uint32_t) {}));
    CHECK_FALSE(loop->add(e->fd(), EPOLLIN, [](uint32_t) {}));
    CHECK_FALSE(loop->remove(12345));
}

TEST_CASE("the first exit request wins and wakes the VMM thread", "[exit_notifier]") {
    auto exits = vmm::ExitNotifier::create();
    REQUIRE(exits);
    CHECK_FALSE((*exits)->requested().has_value());
    (*exits)->request(vmm::VmExitKind::error, "vCPU 1: triple fault");
    (*exits)->request(vmm::VmExitKind::reset, "guest reset");
    auto req = (*exits)->requested();
    REQUIRE(req);
    CHECK(req->kind == vmm::VmExitKind::error);
    CHECK(req->reason == "vCPU 1: triple fault");
    auto woken = (*exits)->event().consume();
    REQUIRE(woken);
    CHECK(*woken == 1);
}
