#include "cli/remote.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>
#include <vector>

#include "common/unique_fd.h"

using vmm::cli::parse_remote_args;
using vmm::cli::remote_outcome;
using vmm::cli::run_remote;

namespace {

std::vector<std::string> words(std::initializer_list<const char*> list) { return {list.begin(), list.end()}; }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A one-shot HTTP server on a Unix socket: accepts one connection, records the
// request (headers and Content-Length body), answers `reply` and closes.
class FakeServer {
public:
    explicit FakeServer(std::string reply) : m_reply(std::move(reply)) {
        char dir_template[] = "/tmp/remote_test.XXXXXX";
        REQUIRE(::mkdtemp(dir_template) != nullptr);
        m_dir = dir_template;
        m_path = m_dir + "/api.sock";
        m_listen.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(m_listen);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, m_path.c_str(), sizeof(addr.sun_path) - 1);
        REQUIRE(::bind(m_listen.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
        REQUIRE(::listen(m_listen.get(), 1) == 0);
        m_thread = std::thread([this] { serve(); });
    }
    ~FakeServer() {
        m_thread.join();
        std::filesystem::remove_all(m_dir);
    }
    FakeServer(const FakeServer&) = delete;
    FakeServer& operator=(const FakeServer&) = delete;

    const std::string& path() const { return m_path; }
    // Valid after the client finished (the server thread wrote it before replying).
    const std::string& request() const { return m_request; }

private:
    void serve() {
        pollfd pfd{m_listen.get(), POLLIN, 0};
        if (::poll(&pfd, 1, 5000) != 1) return;  // bounded: a test without a client ends
        vmm::UniqueFd conn(::accept4(m_listen.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!conn) return;
        std::string data;
        while (!complete(data)) {
            pollfd c{conn.get(), POLLIN, 0};
            if (::poll(&c, 1, 5000) != 1) return;
            char buf[4096];
            ssize_t n = ::read(conn.get(), buf, sizeof(buf));
            if (n <= 0) break;
            data.append(buf, static_cast<size_t>(n));
        }
        m_request = data;
        (void)!::write(conn.get(), m_reply.data(), m_reply.size());
    }
    static bool complete(const std::string& data) {
        size_t end = data.find("\r\n\r\n");
        if (end == std::string::npos) return false;
        size_t length = 0;
        std::string headers = data.substr(0, end);
        for (auto& ch : headers) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (size_t at = headers.find("content-length:"); at != std::string::npos) {
            length = std::strtoul(headers.c_str() + at + 15, nullptr, 10);
        }
        return data.size() >= end + 4 + length;
    }

    std::string m_reply;
    std::string m_dir;
    std::string m_path;
    vmm::UniqueFd m_listen;
    std::string m_request;
    std::thread m_thread;
};

std::string http_reply(int status, const std::string& reason, const std::string& body) {
    return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: application/json\r\n" +
           "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

struct Run {
    int status;
    std::string out;
    std::string err;
};

Run remote(const std::vector<std::string>& args) {
    std::ostringstream out, err;
    int status = run_remote(args, out, err);
    return {status, out.str(), err.str()};
}

}  // namespace

TEST_CASE("remote: every command maps to its method and path", "[remote]") {
    struct Case {
        const char* command;
        bool is_put;
        const char* path;
    };
    const Case cases[] = {
        {"ping", false, "vmm.ping"},          {"info", false, "vm.info"},
        {"counters", false, "vm.counters"},   {"balloon-statistics", false, "vm.balloon-statistics"},
        {"pause", true, "vm.pause"},          {"resume", true, "vm.resume"},
        {"shutdown", true, "vm.shutdown"},    {"shutdown-vmm", true, "vmm.shutdown"},
        {"reboot", true, "vm.reboot"},        {"power-button", true, "vm.power-button"},
    };
    for (const Case& c : cases) {
        INFO(c.command);
        auto r = parse_remote_args(words({"--api-socket", "/run/vmm.sock", c.command}));
        REQUIRE(r);
        CHECK(r->socket_path == "/run/vmm.sock");
        CHECK(r->is_put == c.is_put);
        CHECK(r->path == c.path);
        CHECK(r->body.empty());
    }
}

TEST_CASE("remote: resize-balloon sends the size in bytes", "[remote]") {
    auto r = parse_remote_args(words({"--api-socket=path=/s", "resize-balloon", "512M"}));
    REQUIRE(r);
    CHECK(r->socket_path == "/s");
    CHECK(r->is_put);
    CHECK(r->path == "vm.resize-balloon");
    CHECK(r->body == R"({"size":536870912})");
    auto bytes = parse_remote_args(words({"resize-balloon", "4096", "--api-socket", "/s"}));
    REQUIRE(bytes);
    CHECK(bytes->body == R"({"size":4096})");
}

TEST_CASE("remote: add-device and remove-device send cloud-hypervisor's bodies", "[remote][vfio]") {
    auto plain = parse_remote_args(words({"--api-socket", "/s", "add-device", "/sys/bus/pci/devices/0000:01:00.0/"}));
    REQUIRE(plain);
    CHECK(plain->is_put);
    CHECK(plain->path == "vm.add-device");
    CHECK(plain->body == R"({"path":"/sys/bus/pci/devices/0000:01:00.0/"})");
    auto with_id = parse_remote_args(words({"--api-socket", "/s", "add-device", "path=0000:02:00.0,id=nic"}));
    REQUIRE(with_id);
    CHECK(with_id->body == R"({"id":"nic","path":"0000:02:00.0"})");
    CHECK_FALSE(parse_remote_args(words({"--api-socket", "/s", "add-device", "path=a,colour=red"})));
    CHECK_FALSE(parse_remote_args(words({"--api-socket", "/s", "add-device"})));
    auto remove = parse_remote_args(words({"--api-socket", "/s", "remove-device", "nic"}));
    REQUIRE(remove);
    CHECK(remove->path == "vm.remove-device");
    CHECK(remove->body == R"({"id":"nic"})");
}

TEST_CASE("remote: usage errors", "[remote]") {
    CHECK_FALSE(parse_remote_args(words({"info"})));                                   // no socket
    CHECK_FALSE(parse_remote_args(words({"--api-socket"})));                           // no value
    CHECK_FALSE(parse_remote_args(words({"--api-socket", "/s"})));                     // no command
    CHECK_FALSE(parse_remote_args(words({"--api-socket", "/s", "frobnicate"})));       // unknown command
    CHECK_FALSE(parse_remote_args(words({"--api-socket", "/s", "info", "extra"})));    // stray operand
    CHECK_FALSE(parse_remote_args(words({"--api-socket", "/s", "resize-balloon"})));   // missing SIZE
    CHECK_FALSE(parse_remote_args(words({"--api-socket", "/s", "resize-balloon", "12X"})));
    CHECK_FALSE(parse_remote_args(words({"--bogus", "--api-socket", "/s", "info"})));
    auto help = parse_remote_args(words({"--help"}));
    REQUIRE(help);
    CHECK(help->help);

    Run run = remote(words({"--api-socket", "/s", "frobnicate"}));
    CHECK(run.status == 2);
    CHECK(run.out.empty());
    CHECK(contains(run.err, "vmm remote: unknown command 'frobnicate'"));
}

TEST_CASE("remote: outcome of replies", "[remote]") {
    auto ok = remote_outcome({200, R"({"state":"Running","n":[1,2]})"});
    CHECK(ok.exit_code == 0);
    CHECK(ok.out == "{\n  \"n\": [\n    1,\n    2\n  ],\n  \"state\": \"Running\"\n}\n");
    CHECK(ok.err.empty());

    auto empty = remote_outcome({204, ""});
    CHECK(empty.exit_code == 0);
    CHECK(empty.out.empty());
    CHECK(empty.err.empty());

    auto conflict = remote_outcome({409, R"({"error":"the VM is already paused"})"});
    CHECK(conflict.exit_code == 1);
    CHECK(conflict.out.empty());
    CHECK(conflict.err == "vmm remote: 409 the VM is already paused\n");

    auto raw = remote_outcome({502, "bad gateway\r\n"});
    CHECK(raw.exit_code == 1);
    CHECK(raw.err == "vmm remote: 502 bad gateway\n");
}

TEST_CASE("remote: a request through a socket, JSON reply printed pretty", "[remote]") {
    FakeServer server(http_reply(200, "OK", R"({"version":"1.0","pid":42})"));
    Run run = remote(words({"--api-socket", server.path().c_str(), "ping"}));
    CHECK(run.status == 0);
    CHECK(run.out == "{\n  \"pid\": 42,\n  \"version\": \"1.0\"\n}\n");
    CHECK(run.err.empty());
    CHECK(server.request().rfind("GET /api/v1/vmm.ping HTTP/1.1\r\n", 0) == 0);
}

TEST_CASE("remote: PUT with a body, 204 prints nothing", "[remote]") {
    FakeServer server("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    Run run = remote(words({"--api-socket", server.path().c_str(), "resize-balloon", "64M"}));
    CHECK(run.status == 0);
    CHECK(run.out.empty());
    CHECK(run.err.empty());
    CHECK(server.request().rfind("PUT /api/v1/vm.resize-balloon HTTP/1.1\r\n", 0) == 0);
    CHECK(contains(server.request(), "\r\n\r\n{\"size\":67108864}"));
}

TEST_CASE("remote: an error reply exits 1 with status and message", "[remote]") {
    FakeServer server(http_reply(409, "Conflict", R"({"error":"the VM is not paused"})"));
    Run run = remote(words({"--api-socket", server.path().c_str(), "resume"}));
    CHECK(run.status == 1);
    CHECK(run.out.empty());
    CHECK(run.err == "vmm remote: 409 the VM is not paused\n");
}

TEST_CASE("remote: no VMM at the socket exits 1", "[remote]") {
    Run run = remote(words({"--api-socket", "/nonexistent/dir/vmm.sock", "info"}));
    CHECK(run.status == 1);
    CHECK(run.out.empty());
    CHECK(contains(run.err, "vmm remote: "));
    CHECK(contains(run.err, "/nonexistent/dir/vmm.sock"));
}
