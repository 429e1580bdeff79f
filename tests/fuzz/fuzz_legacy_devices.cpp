// The port-I/O and PCI devices a guest reaches with IN/OUT and MMIO, through the
// real buses as the vCPU exit handler dispatches them: the 8250 serial port
// (0x3f8), the i8042 (0x60/0x64), the debug port (0x80), PCI configuration
// mechanism #1 (0xcf8/0xcfc) and ECAM (MMIO), with the host bridge and a device
// whose config space has 32/64-bit memory and I/O BARs and MSI/MSI-X capabilities.
// Checks: programmed BAR addresses are aligned to their size, and the capability
// walk stays inside the legacy config space and terminates.
//
// Input: ops until the end, each an u8 opcode (mod 6) and its operands:
//   0 pio write   u16 port, u8 size_sel, u32 value      1 pio read   u16 port, u8 size_sel
//   2 ecam write  u32 offset, u8 size_sel, u32 value    3 ecam read  u32 offset, u8 size_sel
//   4 serial input  u8 len, len bytes                   5 Ctrl+Alt+Del
#include <array>
#include <chrono>
#include <memory>
#include <mutex>

#include "devices/bus.h"
#include "devices/legacy/debug_port.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "devices/pci/config_space.h"
#include "devices/pci/pci_root.h"
#include "support/fuzz_common.h"
#include "support/fuzz_input.h"

using namespace vmm;
using namespace vmm::devices;
using namespace vmm::devices::pci;

namespace {

constexpr uint64_t kEcamBase = 0xe0000000;
constexpr std::array<size_t, 4> kSizes = {1, 2, 4, 8};

class NullLine final : public InterruptLine {
public:
    void trigger() override {}
};

// A function with every kind of BAR and both MSI flavours, as a passthrough
// device presents itself.
class TestFunction final : public PciDevice {
public:
    TestFunction() : m_config(0x1af4, 0x10ff, 0x020000) {
        check(m_config.add_bar(0, BarKind::Memory32, 0x1000));
        check(m_config.add_bar(1, BarKind::Memory64, 0x100000, true));
        check(m_config.add_bar(4, BarKind::Io, 0x20));
        std::array<uint8_t, 10> msi{};
        std::array<uint8_t, 10> msi_writable{};
        msi_writable.fill(0xff);
        (void)m_config.add_capability(kCapIdMsi, msi, msi_writable);
        std::array<uint8_t, 10> msix{};
        (void)m_config.add_capability(kCapIdMsix, msix, msi_writable);
    }
    uint32_t config_read(uint16_t offset, uint8_t size) override {
        std::lock_guard lock(m_mutex);
        return m_config.read(offset, size);
    }
    void config_write(uint16_t offset, uint8_t size, uint32_t value) override {
        std::lock_guard lock(m_mutex);
        m_config.write(offset, size, value);
    }
    std::vector<BarInfo> bars() const override {
        std::lock_guard lock(m_mutex);
        return m_config.bars();
    }
    std::vector<Capability> capabilities() const {
        std::lock_guard lock(m_mutex);
        return m_config.capabilities();
    }

private:
    static void check(const Result<void>& r) { FUZZ_CHECK_MSG(r.has_value(), "harness: BAR refused"); }
    mutable std::mutex m_mutex;
    ConfigSpace m_config;
};

struct Machine {
    Machine() {
        auto line = std::make_shared<NullLine>();
        serial = std::make_shared<Serial8250>(line, [](std::span<const std::byte>) {});
        i8042 = std::make_shared<I8042>(line, [this] { ++resets; });
        root = std::make_shared<PciRoot>();
        function = std::make_shared<TestFunction>();
        FUZZ_CHECK(root->attach(function).has_value());
        FUZZ_CHECK(pio.insert(serial, Serial8250::kComBase, Serial8250::kRegisterCount).has_value());
        FUZZ_CHECK(pio.insert(i8042, I8042::kBase, I8042::kSize).has_value());
        FUZZ_CHECK(pio.insert(std::make_shared<DebugPort>(std::chrono::steady_clock::now()), 0x80, 1).has_value());
        FUZZ_CHECK(pio.insert(std::make_shared<PciConfigIo>(root), kConfigAddressPort, kConfigIoSize).has_value());
        FUZZ_CHECK(mmio.insert(std::make_shared<PciEcam>(root), kEcamBase, kEcamBusSize).has_value());
    }

    void check() const {
        for (const BarInfo& b : function->bars()) {
            FUZZ_CHECK(b.size != 0 && (b.size & (b.size - 1)) == 0);
            FUZZ_CHECK_MSG(b.address % b.size == 0, "a BAR address not aligned to its size");
        }
        auto caps = function->capabilities();
        FUZZ_CHECK(caps.size() <= (kLegacyConfigSize - kFirstCapability) / 4);
        for (const Capability& c : caps) FUZZ_CHECK(c.offset >= kFirstCapability && c.offset < kLegacyConfigSize);
    }

    Bus pio;
    Bus mmio;
    std::shared_ptr<Serial8250> serial;
    std::shared_ptr<I8042> i8042;
    std::shared_ptr<PciRoot> root;
    std::shared_ptr<TestFunction> function;
    int resets = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vmm::fuzz::FuzzInput in(data, size);
    Machine m;
    for (unsigned i = 0; i < 4096 && !in.empty(); ++i) {
        uint8_t op = in.u8() % 6;
        uint64_t value = 0;
        switch (op) {
            case 0:
            case 1: {
                uint16_t port = in.u16();
                size_t n = kSizes[in.u8() % kSizes.size()];
                auto bytes = std::as_writable_bytes(std::span(&value, 1)).first(n);
                if (op == 0) {
                    value = in.u32();
                    (void)m.pio.write(port, bytes);
                } else {
                    (void)m.pio.read(port, bytes);
                }
                break;
            }
            case 2:
            case 3: {
                uint64_t offset = in.u32() % (2 * kEcamBusSize);
                size_t n = kSizes[in.u8() % kSizes.size()];
                auto bytes = std::as_writable_bytes(std::span(&value, 1)).first(n);
                if (op == 2) {
                    value = in.u32();
                    (void)m.mmio.write(kEcamBase + offset, bytes);
                } else {
                    (void)m.mmio.read(kEcamBase + offset, bytes);
                }
                break;
            }
            case 4: {
                auto bytes = in.bytes(in.u8());
                FUZZ_CHECK(m.serial->enqueue_input(bytes) <= Serial8250::kInputCapacity);
                break;
            }
            case 5: (void)m.i8042->trigger_ctrl_alt_del(); break;
        }
    }
    m.check();
    return 0;
}
