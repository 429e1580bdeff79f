// virtio-blk request parsing and execution (devices/virtio/block) behind the real
// virtio-mmio transport, driven by the hostile driver of support/virtio_driver.h.
// The disk is a 64 KiB image in $TMPDIR (or /tmp); the header's high bits pick
// read-only and O_DIRECT (the bounce-buffer path; plain I/O where the file
// system refuses O_DIRECT).
//
// Input: u8 disk_mode (bit0 read-only, bit1 O_DIRECT), then the driver program.
// Device ops: 0 counters().
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "devices/virtio/block/block_device.h"
#include "support/fuzz_common.h"
#include "support/virtio_driver.h"

using namespace vmm;
using namespace vmm::devices::virtio;
using memory::GuestAddress;

namespace {

constexpr size_t kDiskBytes = 64 * 1024;

// The image file, created once per process and removed at exit.
class DiskImage {
public:
    DiskImage() {
        const char* tmp = std::getenv("TMPDIR");
        m_path = std::string(tmp && *tmp ? tmp : "/tmp") + "/vmm_fuzz_blk_XXXXXX";
        int fd = ::mkstemp(m_path.data());
        FUZZ_CHECK_MSG(fd >= 0, "harness: cannot create the disk image");
        std::vector<char> data(kDiskBytes);
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
        FUZZ_CHECK(::pwrite(fd, data.data(), data.size(), 0) == static_cast<ssize_t>(data.size()));
        ::close(fd);
    }
    ~DiskImage() { ::unlink(m_path.c_str()); }
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
};

std::shared_ptr<BlockDevice> make_device(const std::string& path, uint8_t mode) {
    BlockOptions options{path, (mode & 1) != 0, (mode & 2) != 0, "fuzz-disk"};
    auto dev = BlockDevice::create(options);
    if (!dev && options.direct) {
        options.direct = false;  // e.g. tmpfs: no O_DIRECT
        dev = BlockDevice::create(options);
    }
    FUZZ_CHECK_MSG(dev.has_value(), "harness: cannot open the disk image");
    return *dev;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static DiskImage image;
    vmm::fuzz::FuzzInput in(data, size);
    auto mem = vmm::fuzz::make_memory(vmm::fuzz::kDeviceLayout);
    auto device = make_device(image.path(), in.u8());
    FUZZ_CHECK(device->capacity_sectors() == kDiskBytes / kSectorSize);
    vmm::fuzz::VirtioFuzzDriver driver(device, mem);
    driver.run(in, [&](uint8_t, vmm::fuzz::FuzzInput&) { (void)device->counters(); });
    return 0;
}
