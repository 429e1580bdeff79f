// Raw socket access to the API server, for what ApiClient never sends.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace vmm::test {

UniqueFd raw_connect(const std::string& path);
void raw_send(int fd, const std::string& data);
// Reads until EOF or `timeout`; `eof` tells which.
std::string raw_read_all(int fd, std::chrono::milliseconds timeout, bool* eof = nullptr);
// Sends `data` and reads everything until the server closes.
std::string raw_exchange(const std::string& path, const std::string& data,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5));
// The status code of every response found in `text`, in order.
std::vector<int> statuses(const std::string& text);

// A private temporary directory, removed with everything in it.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
};

}  // namespace vmm::test
