#include <catch2/catch.hpp>

#include <poll.h>

#include <atomic>
#include <thread>

#include "vmm/request_channel.h"

using namespace std::chrono_literals;
using vmm::RequestChannel;
using vmm::VmReply;
using vmm::VmRequest;

namespace {
// A VMM thread that answers every request until told to stop.
struct FakeVmmThread {
    explicit FakeVmmThread(std::shared_ptr<RequestChannel> ch) : channel(std::move(ch)) {
        thread = std::thread([this] {
            while (!stop) {
                pollfd pfd{channel->fd(), POLLIN, 0};
                if (::poll(&pfd, 1, 20) > 0) {
                    channel->drain([this](const VmRequest& r) -> VmReply {
                        ++handled;
                        if (const auto* resize = std::get_if<vmm::request::ResizeBalloon>(&r)) {
                            if (resize->bytes == 0) return vmm::RequestError{vmm::RequestError::Kind::bad_request, "zero"};
                        }
                        return vmm::Empty{};
                    });
                }
            }
        });
    }
    ~FakeVmmThread() {
        stop = true;
        thread.join();
    }
    std::shared_ptr<RequestChannel> channel;
    std::atomic<bool> stop{false};
    std::atomic<int> handled{0};
    std::thread thread;
};
}  // namespace

TEST_CASE("requests reach the VMM thread and replies come back", "[request_channel]") {
    auto channel = RequestChannel::create();
    REQUIRE(channel);
    FakeVmmThread vmm(*channel);
    auto ok = (*channel)->call(vmm::request::Ping{});
    REQUIRE(ok);
    CHECK(std::holds_alternative<vmm::Empty>(*ok));
    auto bad = (*channel)->call(vmm::request::ResizeBalloon{0});
    REQUIRE(bad);
    REQUIRE(std::holds_alternative<vmm::RequestError>(*bad));
    CHECK(std::get<vmm::RequestError>(*bad).message == "zero");
}

TEST_CASE("many API threads at once each get their own reply", "[request_channel]") {
    auto channel = RequestChannel::create();
    REQUIRE(channel);
    FakeVmmThread vmm(*channel);
    std::atomic<int> good{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 8; ++t) {
        clients.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) {
                uint64_t bytes = (t * 1000 + i) % 3 == 0 ? 0 : 4096;
                auto reply = (*channel)->call(vmm::request::ResizeBalloon{bytes});
                if (!reply) continue;
                bool is_error = std::holds_alternative<vmm::RequestError>(*reply);
                if (is_error == (bytes == 0)) ++good;
            }
        });
    }
    for (auto& c : clients) c.join();
    CHECK(good == 1600);
    CHECK(vmm.handled == 1600);
}

TEST_CASE("a VMM thread that does not answer makes the call time out, not hang", "[request_channel]") {
    auto channel = RequestChannel::create();
    REQUIRE(channel);
    auto start = std::chrono::steady_clock::now();
    auto reply = (*channel)->call(vmm::request::GetInfo{}, 50ms);
    REQUIRE_FALSE(reply);
    CHECK(reply.error().message() == "the VMM did not answer within 50 ms");
    CHECK(std::chrono::steady_clock::now() - start < 5s);
    // The abandoned request is not executed later.
    int handled = 0;
    (*channel)->drain([&](const VmRequest&) -> VmReply { ++handled; return vmm::Empty{}; });
    CHECK(handled == 0);
}

TEST_CASE("a closed channel fails calls at once", "[request_channel]") {
    auto channel = RequestChannel::create();
    REQUIRE(channel);
    (*channel)->close();
    auto reply = (*channel)->call(vmm::request::Ping{});
    REQUIRE_FALSE(reply);
    CHECK(reply.error().message() == "the VMM is shutting down");
}
