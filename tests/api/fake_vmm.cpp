#include "fake_vmm.h"

#include <fmt/format.h>

namespace vmm::test {

void FakeVmm::loop() {
    for (;;) {
        pollfd fds[2] = {{m_channel->fd(), POLLIN, 0}, {m_stop.fd(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) continue;
        if (fds[1].revents) return;
        m_channel->drain([this](const VmRequest& r) {
            if (int d = delay_ms.load()) std::this_thread::sleep_for(std::chrono::milliseconds(d));
            {
                std::lock_guard guard(m_mutex);
                m_requests.push_back(r);
            }
            return answer(r);
        });
    }
}

VmReply FakeVmm::answer(const VmRequest& request) {
    using Kind = RequestError::Kind;
    if (std::holds_alternative<request::Ping>(request)) return PingInfo{"9.9.9", 1234, {"fake"}};
    if (std::holds_alternative<request::ShutdownVmm>(request)) return Empty{};
    if (!has_vm) return RequestError{Kind::not_found, "no VM"};
    if (std::holds_alternative<request::GetInfo>(request)) {
        VmInfo info;
        info.config.memory.size = kRam;
        info.state = m_paused ? VmState::paused : VmState::running;
        info.memory_actual_size = kRam - m_balloon;
        info.balloon = BalloonInfo{"virtio-balloon", m_balloon, m_balloon, false, false, 0, std::nullopt};
        return info;
    }
    if (std::holds_alternative<request::GetCounters>(request)) {
        return DeviceCounters{{"net0", {{"rx_bytes", 7}}}};
    }
    if (std::holds_alternative<request::Pause>(request)) {
        if (m_paused) return RequestError{Kind::wrong_state, "already paused"};
        m_paused = true;
        return Empty{};
    }
    if (std::holds_alternative<request::Resume>(request)) {
        if (!m_paused) return RequestError{Kind::wrong_state, "not paused"};
        m_paused = false;
        return Empty{};
    }
    if (const auto* resize = std::get_if<request::ResizeBalloon>(&request)) {
        if (resize->bytes >= kRam) return RequestError{Kind::bad_request, "balloon larger than RAM"};
        m_balloon = resize->bytes;
        return Empty{};
    }
    if (std::holds_alternative<request::GetBalloonStatistics>(request)) {
        BalloonStatistics stats{{{"free_memory", 123}}, std::chrono::system_clock::time_point(std::chrono::seconds(5))};
        return BalloonInfo{"virtio-balloon", m_balloon, m_balloon, false, false, 1, stats};
    }
    return Empty{};  // shutdown, reboot, power button
}

}  // namespace vmm::test
