#include "raw_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace vmm::test {

UniqueFd raw_connect(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        throw std::runtime_error("connect " + path + ": " + std::strerror(errno));
    }
    return fd;
}

void raw_send(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n <= 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
        off += static_cast<size_t>(n);
    }
}

std::string raw_read_all(int fd, std::chrono::milliseconds timeout, bool* eof) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string out;
    if (eof) *eof = false;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return out;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return out;
        char buf[4096];
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            if (eof) *eof = true;
            return out;
        }
        out.append(buf, static_cast<size_t>(n));
    }
}

std::string raw_exchange(const std::string& path, const std::string& data, std::chrono::milliseconds timeout) {
    UniqueFd fd = raw_connect(path);
    raw_send(fd.get(), data);
    return raw_read_all(fd.get(), timeout);
}

std::vector<int> statuses(const std::string& text) {
    std::vector<int> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t head_end = text.find("\r\n\r\n", pos);
        if (text.compare(pos, 9, "HTTP/1.1 ") != 0 || head_end == std::string::npos) {
            out.push_back(-1);  // not a response where one should start
            return out;
        }
        out.push_back(std::stoi(text.substr(pos + 9, 3)));
        size_t length = 0;
        size_t cl = text.find("Content-Length: ", pos);
        if (cl != std::string::npos && cl < head_end) length = std::stoul(text.substr(cl + 16));
        pos = head_end + 4 + length;
    }
    return out;
}

TempDir::TempDir() {
    char tmpl[] = "/tmp/vmm-api-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    m_path = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
}

}  // namespace vmm::test
