// virtio-net (devices/virtio/net) behind the real virtio-mmio transport, driven by
// the hostile driver of support/virtio_driver.h, with a backend standing in for
// the tap: receive frames come from the input, transmitted frames are checked
// (bounded length, a zeroed virtio_net_hdr: no offloads were negotiated).
//
// Input: the driver program. Device ops:
//   0 inject  u16 len, len bytes: one frame waits in the backend; EPOLLIN
//   1 events  u32: process_backend with those epoll events
//   2 fail    toggles backend write errors
//   3 counters
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <vector>

#include "common/event_fd.h"
#include "devices/virtio/net/net_device.h"
#include "support/fuzz_common.h"
#include "support/virtio_driver.h"

using namespace vmm;
using namespace vmm::devices::virtio;
using namespace vmm::devices::virtio::net;

namespace {

constexpr size_t kMaxWaiting = 16;

class FuzzBackend final : public NetBackend {
public:
    FuzzBackend() : m_event(EventFd::create().value()) {}

    Result<std::optional<size_t>> read(std::span<const iovec> iov) override {
        if (m_frames.empty()) return std::optional<size_t>{};
        std::vector<std::byte> frame = std::move(m_frames.front());
        m_frames.pop_front();
        // Scatter like readv: a frame longer than the buffers is cut short.
        size_t done = 0;
        for (const iovec& v : iov) {
            size_t n = std::min(v.iov_len, frame.size() - done);
            if (n > 0) std::memcpy(v.iov_base, frame.data() + done, n);
            done += n;
            if (done == frame.size()) break;
        }
        return std::optional<size_t>(done);
    }

    Result<size_t> write(std::span<const iovec> iov) override {
        size_t total = 0;
        for (const iovec& v : iov) {
            // Touch every byte: the sanitizers check that the device handed over
            // memory it owns.
            const auto* p = static_cast<const unsigned char*>(v.iov_base);
            for (size_t i = 0; i < v.iov_len; ++i) m_checksum += p[i];
            total += v.iov_len;
        }
        FUZZ_CHECK(total >= kVnetHdrSize && total <= kMaxBufferSize);
        const auto* hdr = static_cast<const unsigned char*>(iov[0].iov_base);
        for (size_t i = 0; i < std::min(kVnetHdrSize, iov[0].iov_len); ++i) FUZZ_CHECK(hdr[i] == 0);
        if (fail_writes) return Error("injected tap write error");
        return total;
    }

    int fd() const override { return m_event.fd(); }

    void inject(std::span<const std::byte> frame) {
        if (m_frames.size() < kMaxWaiting) m_frames.emplace_back(frame.begin(), frame.end());
    }

    bool fail_writes = false;

private:
    EventFd m_event;
    std::deque<std::vector<std::byte>> m_frames;
    uint64_t m_checksum = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vmm::fuzz::FuzzInput in(data, size);
    auto mem = vmm::fuzz::make_memory(vmm::fuzz::kDeviceLayout);
    auto backend = std::make_unique<FuzzBackend>();
    FuzzBackend* tap = backend.get();
    auto device = std::make_shared<NetDevice>(std::move(backend),
                                              MacAddress{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}, "net0");
    vmm::fuzz::VirtioFuzzDriver driver(device, mem);
    driver.run(in, [&](uint8_t sub, vmm::fuzz::FuzzInput& ops) {
        switch (sub % 4) {
            case 0:
                tap->inject(ops.bytes(ops.u16()));
                device->process_backend(tap->fd(), EPOLLIN);
                break;
            case 1: device->process_backend(tap->fd(), ops.u32()); break;
            case 2: tap->fail_writes = !tap->fail_writes; break;
            case 3: (void)device->counters(); break;
        }
    });
    return 0;
}
