// virtio-balloon (balloon/virtio_balloon.h: inflate, deflate, statistics, free page
// reporting) behind the real virtio-mmio transport, driven by the hostile driver
// of support/virtio_driver.h. Inflated and reported pages are really discarded
// from the fuzzer's guest RAM.
//
// Input: u8 options (bit0 deflate_on_oom, bit1 free_page_reporting, bit2 stats
// queue), then the driver program (header features bits 1, 2, 5 pick the queues).
// Device ops:
//   0 target    u64: set_target (valid or not)
//   1 timer     the statistics timer fired (process_backend)
//   2 query     stats, counters, target/actual pages (checked against RAM)
//   3 interval  u32: set_stats_interval
#include <sys/epoll.h>

#include "balloon/page_ranges.h"
#include "balloon/virtio_balloon.h"
#include "support/fuzz_common.h"
#include "support/virtio_driver.h"

using namespace vmm;
using namespace vmm::balloon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vmm::fuzz::FuzzInput in(data, size);
    auto mem = vmm::fuzz::make_memory(vmm::fuzz::kDeviceLayout);
    const uint64_t ram = mem.total_size();
    uint8_t bits = in.u8();
    BalloonOptions options;
    options.deflate_on_oom = bits & 1;
    options.free_page_reporting = bits & 2;
    options.stats_polling_interval_s = (bits & 4) ? 1 : 0;
    auto created = VirtioBalloon::create(options, ram);
    FUZZ_CHECK_MSG(created.has_value(), "harness: balloon options refused");
    std::shared_ptr<VirtioBalloon> device = *created;

    vmm::fuzz::VirtioFuzzDriver driver(device, mem);
    driver.run(in, [&](uint8_t sub, vmm::fuzz::FuzzInput& ops) {
        switch (sub % 4) {
            case 0: {
                // Mostly whole pages up to twice the RAM; odd values stay raw.
                uint64_t v = ops.u64();
                uint64_t bytes = (v & 1) ? v : (v >> 1) % (2 * ram / kBalloonPageSize) * kBalloonPageSize;
                bool ok = device->set_target(bytes).has_value();
                FUZZ_CHECK(!ok || device->target_pages() == bytes / kBalloonPageSize);
                break;
            }
            case 1:
                for (int fd : device->backend_fds()) device->process_backend(fd, EPOLLIN);
                break;
            case 2: {
                FUZZ_CHECK(uint64_t{device->target_pages()} * kBalloonPageSize <= ram);
                (void)device->actual_pages();
                (void)device->stats();
                (void)device->counters();
                (void)device->stats_negotiated();
                BalloonCounters c = device->counter_values();
                FUZZ_CHECK(c.inflate_discard_calls <= c.pages_inflated);
                break;
            }
            case 3: (void)device->set_stats_interval(ops.u32()); break;
        }
    });
    return 0;
}
