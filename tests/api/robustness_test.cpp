// The server under hostile or careless clients: concurrency, garbage, slow and
// vanishing clients, connection limits, and the socket file's life.
#include <sys/socket.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "server_fixture.h"

using namespace vmm;
using namespace vmm::test;
using Clock = std::chrono::steady_clock;

namespace {

long elapsed_ms(Clock::time_point since) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count());
}

}  // namespace

TEST_CASE("8 concurrent clients x 1000 requests are all answered correctly", "[api][slow]") {
    ServerFixture f;
    constexpr int kClients = 8;
    constexpr int kRequests = 1000;
    std::atomic<int> good{0};
    std::atomic<int> bad{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            api::ApiClient client(f.path, std::chrono::seconds(20));
            for (int i = 0; i < kRequests; ++i) {
                bool right = false;
                if (i % 2 == 0) {
                    auto r = client.get("vmm.ping");
                    right = r && r->status == 200 && r->body.find("\"version\":\"9.9.9\"") != std::string::npos;
                } else {
                    // Each client asks for its own size; every answer must be 204.
                    auto r = client.put("vm.resize-balloon", fmt::format(R"({{"size": {}}})", (c + 1) * 4096));
                    right = r && r->status == 204;
                }
                (right ? good : bad)++;
            }
        });
    }
    for (auto& t : clients) t.join();
    CHECK(bad == 0);
    CHECK(good == kClients * kRequests);
    CHECK(f.vmm.count() == static_cast<size_t>(kClients * kRequests));
}

TEST_CASE("pipelined requests on one keep-alive connection are answered in order", "[api]") {
    ServerFixture f;
    std::string batch;
    for (int i = 0; i < 50; ++i) batch += "GET /api/v1/vmm.ping HTTP/1.1\r\nHost: x\r\n\r\n";
    batch += "PUT /api/v1/vm.pause HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
    batch += "PUT /api/v1/vm.pause HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    batch += "GET /api/v1/vmm.ping HTTP/1.1\r\n\r\n";  // after close: never answered
    auto text = raw_exchange(f.path, batch);
    std::vector<int> expected(50, 200);
    expected.push_back(204);
    expected.push_back(409);
    CHECK(statuses(text) == expected);
}

TEST_CASE("garbage and malformed requests get 400 and a closed connection", "[api]") {
    ServerFixture f;
    for (const char* junk : {"hello\r\n\r\n", "GET /api/v1/vmm.ping HTTP/1.1\n\n", "\x01\x02\x03\r\n\r\n",
                             "GET /api/v1/vmm.ping HTTP/1.1\r\nBroken header\r\n\r\n"}) {
        INFO(junk);
        UniqueFd fd = raw_connect(f.path);
        raw_send(fd.get(), junk);
        bool eof = false;
        auto text = raw_read_all(fd.get(), std::chrono::seconds(2), &eof);
        CHECK(statuses(text) == std::vector<int>{400});
        CHECK(eof);
    }
    std::string huge_line = "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n\r\n";
    CHECK(statuses(raw_exchange(f.path, huge_line)) == std::vector<int>{414});
    std::string many = "GET /api/v1/vmm.ping HTTP/1.1\r\n";
    for (int i = 0; i < 100; ++i) many += "X-" + std::to_string(i) + ": y\r\n";
    CHECK(statuses(raw_exchange(f.path, many + "\r\n")) == std::vector<int>{431});
    CHECK(f.get("vmm.ping").status == 200);
    CHECK(f.vmm.count() == 1);
}

TEST_CASE("a truncated request is answered 408 after the request timeout", "[api]") {
    ServerFixture f;  // request_timeout = 1 s
    UniqueFd fd = raw_connect(f.path);
    auto start = Clock::now();
    raw_send(fd.get(), "PUT /api/v1/vm.resize-balloon HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"si");
    bool eof = false;
    auto text = raw_read_all(fd.get(), std::chrono::seconds(5), &eof);
    CHECK(statuses(text) == std::vector<int>{408});
    CHECK(eof);
    CHECK(elapsed_ms(start) >= 900);
    CHECK(elapsed_ms(start) < 3000);
    CHECK(f.vmm.count() == 0);
}

TEST_CASE("a client that connects and never sends is served around, then closed", "[api]") {
    ServerFixture f;  // idle_timeout = 500 ms
    UniqueFd silent = raw_connect(f.path);
    auto start = Clock::now();
    for (int i = 0; i < 20; ++i) CHECK(f.get("vmm.ping").status == 200);
    bool eof = false;
    auto text = raw_read_all(silent.get(), std::chrono::seconds(5), &eof);
    CHECK(eof);
    CHECK(text.empty());  // idle, not mid-request: closed without a reply
    CHECK(elapsed_ms(start) >= 400);
    CHECK(elapsed_ms(start) < 3000);
}

TEST_CASE("clients that vanish mid-request or before the reply do not disturb the server", "[api]") {
    ServerFixture f;
    {
        UniqueFd half = raw_connect(f.path);
        raw_send(half.get(), "PUT /api/v1/vm.resize-balloon HTTP/1.1\r\nContent-Len");
    }
    f.vmm.delay_ms = 200;
    {
        // The reply is written to a socket nobody reads any more (EPIPE, no SIGPIPE).
        UniqueFd gone = raw_connect(f.path);
        raw_send(gone.get(), "PUT /api/v1/vm.pause HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    f.vmm.delay_ms = 0;
    CHECK(f.vmm.count() == 1);  // the pause was still carried out
    CHECK(f.get("vmm.ping").status == 200);
    CHECK(json_of(f.get("vm.info"))["state"] == "Paused");
}

TEST_CASE("connections beyond the limit get 503", "[api]") {
    ServerFixture f([](api::ApiServerOptions& o) {
        o.max_connections = 2;
        o.idle_timeout = std::chrono::seconds(5);
    });
    UniqueFd a = raw_connect(f.path);
    UniqueFd b = raw_connect(f.path);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // both accepted
    auto r = f.client().get("vmm.ping");
    REQUIRE(r);
    CHECK(r->status == 503);
    error_of(*r);
    a.reset();
    b.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    // The accept thread reaps the finished connections on its next accept.
    CHECK(f.get("vmm.ping").status == 200);
}

TEST_CASE("the socket is mode 0600 and removed when the server goes", "[api]") {
    TempDir dir;
    FakeVmm vmm;
    std::string path = dir.path() + "/api.sock";
    {
        auto server = api::ApiServer::start(fast_options(path), vmm.channel());
        REQUIRE(server);
        struct stat st {};
        REQUIRE(::lstat(path.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 0777) == 0600);
        REQUIRE(::stat((path + ".lock").c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
    }
    CHECK(::access(path.c_str(), F_OK) != 0);
}

TEST_CASE("a stale socket is replaced; anything else at the path is refused", "[api]") {
    TempDir dir;
    FakeVmm vmm;
    std::string path = dir.path() + "/api.sock";
    {
        // A socket left behind by a VMM that died.
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    }
    {
        auto server = api::ApiServer::start(fast_options(path), vmm.channel());
        REQUIRE(server);
        auto r = api::ApiClient(path).get("vmm.ping");
        REQUIRE(r);
        CHECK(r->status == 200);
    }
    std::string file = dir.path() + "/file";
    UniqueFd regular(::open(file.c_str(), O_CREAT | O_WRONLY, 0600));
    auto refused = api::ApiServer::start(fast_options(file), vmm.channel());
    REQUIRE_FALSE(refused);
    CHECK(refused.error().message().find("not a socket") != std::string::npos);
    CHECK(::access(file.c_str(), F_OK) == 0);
}

TEST_CASE("a second server on the same path is refused", "[api]") {
    ServerFixture f;
    auto second = api::ApiServer::start(fast_options(f.path), f.vmm.channel());
    REQUIRE_FALSE(second);
    CHECK(second.error().message() == "another VMM is using the API socket " + f.path);
    CHECK(f.get("vmm.ping").status == 200);  // the first one is untouched
    f.server.reset();
    auto third = api::ApiServer::start(fast_options(f.path), f.vmm.channel());
    CHECK(third);  // the lock went with the first server
}

TEST_CASE("a socket path too long for sockaddr_un is refused", "[api]") {
    FakeVmm vmm;
    auto r = api::ApiServer::start(fast_options("/tmp/" + std::string(200, 'x')), vmm.channel());
    REQUIRE_FALSE(r);
    CHECK(r.error().message().find("too long") != std::string::npos);
}

TEST_CASE("destroying the server with clients connected is prompt", "[api]") {
    ServerFixture f([](api::ApiServerOptions& o) {
        o.idle_timeout = std::chrono::seconds(30);
        o.request_timeout = std::chrono::seconds(30);
    });
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 5; ++i) clients.push_back(raw_connect(f.path));
    raw_send(clients[0].get(), "PUT /api/v1/vm.pause HTTP/1.1\r\nContent-Length: 50\r\n\r\n{");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto start = Clock::now();
    f.server.reset();
    CHECK(elapsed_ms(start) < 500);
    for (auto& c : clients) {
        bool eof = false;
        (void)raw_read_all(c.get(), std::chrono::seconds(1), &eof);
        CHECK(eof);
    }
    CHECK(::access(f.path.c_str(), F_OK) != 0);
}
