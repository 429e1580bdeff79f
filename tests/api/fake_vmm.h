// A stand-in for the VMM thread: drains the RequestChannel with canned replies
// and records every request it answered.
#pragma once

#include <poll.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/event_fd.h"
#include "vmm/request_channel.h"

namespace vmm::test {

class FakeVmm {
public:
    static constexpr uint64_t kRam = 1ull << 30;

    FakeVmm() : m_channel(RequestChannel::create().value()), m_stop(EventFd::create().value()) {
        m_thread = std::thread([this] { loop(); });
    }
    ~FakeVmm() {
        (void)m_stop.signal();
        m_thread.join();
        m_channel->close();
    }
    FakeVmm(const FakeVmm&) = delete;
    FakeVmm& operator=(const FakeVmm&) = delete;

    std::shared_ptr<RequestChannel> channel() const { return m_channel; }
    std::vector<VmRequest> requests() {
        std::lock_guard guard(m_mutex);
        return m_requests;
    }
    size_t count() {
        std::lock_guard guard(m_mutex);
        return m_requests.size();
    }
    // How long the VMM thread takes per request (to test timeouts).
    std::atomic<int> delay_ms{0};
    std::atomic<bool> has_vm{true};
    // Answer as a VM with a HyperAlloc balloon (2 MiB granularity, "hyperalloc" block).
    std::atomic<bool> hyperalloc{false};

private:
    void loop();
    VmReply answer(const VmRequest& request);
    BalloonInfo balloon_info(bool with_statistics) const;

    std::shared_ptr<RequestChannel> m_channel;
    EventFd m_stop;
    std::thread m_thread;
    std::mutex m_mutex;
    std::vector<VmRequest> m_requests;
    bool m_paused = false;
    uint64_t m_balloon = 0;
};

}  // namespace vmm::test
