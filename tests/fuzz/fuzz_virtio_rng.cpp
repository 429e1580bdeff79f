// virtio-rng (devices/virtio/rng) behind the real virtio-mmio transport, driven by
// the hostile driver of support/virtio_driver.h. The entropy source is /dev/zero
// (deterministic) or, with bit0 of the first byte, /dev/null (always at EOF: the
// "source ran dry" path).
//
// Input: u8 source, then the driver program. Device ops: 0 counters().
#include "devices/virtio/rng/rng_device.h"
#include "support/fuzz_common.h"
#include "support/virtio_driver.h"

using namespace vmm;
using namespace vmm::devices::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vmm::fuzz::FuzzInput in(data, size);
    auto mem = vmm::fuzz::make_memory(vmm::fuzz::kDeviceLayout);
    auto created = RngDevice::create(in.flag() ? "/dev/null" : "/dev/zero");
    FUZZ_CHECK_MSG(created.has_value(), "harness: cannot open the entropy source");
    std::shared_ptr<RngDevice> device = *created;
    vmm::fuzz::VirtioFuzzDriver driver(device, mem);
    driver.run(in, [&](uint8_t, vmm::fuzz::FuzzInput&) {
        auto c = device->counters();
        FUZZ_CHECK(c.at("bytes") <= c.at("requests") * RngDevice::kMaxBytesPerChain);
    });
    return 0;
}
