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

BalloonInfo FakeVmm::balloon_info(bool with_statistics) const {
    BalloonInfo b;
    b.target_bytes = m_balloon;
    b.actual_bytes = m_balloon;
    if (hyperalloc) {
        b.kind = "hyperalloc";
        HyperAllocInfo h;
        h.target_bytes = m_balloon;
        h.hard_reclaimed_bytes = m_balloon;
        h.guest_free_bytes = kRam / 2;  // page_cache_bytes stays unknown
        h.installs = 3;
        h.installs_per_s = 1.5;
        h.auto_period_ms = 5000;
        h.zones = {{"DMA32", 4096, 258048}, {"NORMAL", 262144, 0}};
        h.host_rss_bytes = 42ull << 20;
        b.hyperalloc = h;
        return b;
    }
    b.kind = "virtio-balloon";
    if (with_statistics) {
        b.stats_polling_interval_s = 1;
        b.statistics =
            BalloonStatistics{{{"free_memory", 123}}, std::chrono::system_clock::time_point(std::chrono::seconds(5))};
    }
    return b;
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
        info.balloon = balloon_info(false);
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
        if (hyperalloc && resize->bytes % (2u << 20) != 0) {
            return RequestError{Kind::bad_request, "not a multiple of 2 MiB"};
        }
        m_balloon = resize->bytes;
        return Empty{};
    }
    if (std::holds_alternative<request::GetBalloonStatistics>(request)) {
        return balloon_info(true);
    }
    return Empty{};  // shutdown, reboot, power button
}

}  // namespace vmm::test
