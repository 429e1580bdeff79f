// virtio-console (devices/virtio/console) behind the real virtio-mmio transport,
// driven by the hostile driver of support/virtio_driver.h, with host input from
// the fuzz input and an output sink that checks what the device hands it.
//
// Input: the driver program. Device ops:
//   0 input  u16 len, len bytes: enqueue_input (accepts at most the free space)
//   1 counters
#include <algorithm>

#include "devices/virtio/console/console_device.h"
#include "support/fuzz_common.h"
#include "support/virtio_driver.h"

using namespace vmm;
using namespace vmm::devices::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vmm::fuzz::FuzzInput in(data, size);
    auto mem = vmm::fuzz::make_memory(vmm::fuzz::kDeviceLayout);
    uint64_t sink_bytes = 0;
    unsigned checksum = 0;
    auto device = std::make_shared<ConsoleDevice>([&](std::span<const std::byte> out) {
        FUZZ_CHECK(!out.empty() && out.size() <= 4096);  // bounded chunks (see transmit_chain)
        for (std::byte b : out) checksum += std::to_integer<unsigned>(b);
        sink_bytes += out.size();
    });
    vmm::fuzz::VirtioFuzzDriver driver(device, mem);
    driver.run(in, [&](uint8_t sub, vmm::fuzz::FuzzInput& ops) {
        if (sub % 2 == 0) {
            size_t space = device->input_space();
            auto bytes = ops.bytes(ops.u16());
            size_t accepted = device->enqueue_input(bytes);
            FUZZ_CHECK(accepted == std::min(space, bytes.size()));
            FUZZ_CHECK(device->input_space() <= ConsoleDevice::kInputCapacity);
        } else {
            FUZZ_CHECK(device->counters().at("tx_bytes") == sink_bytes);
        }
    });
    return 0;
}
