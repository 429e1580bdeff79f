// PCI bus 0 behind a host bridge that the guest kernel finds without firmware:
// configuration mechanism #1 (0xCF8 address, 0xCFC..0xCFF data) and ECAM (1 MiB per
// bus, bus 0 only) reach the same functions. Slot 0 is the host bridge (00:00.0);
// devices take slots 1..31, function 0. Anything absent or malformed reads as
// all-ones and ignores writes, as on real hardware.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

#include "common/result.h"
#include "devices/bus_device.h"
#include "devices/pci/config_space.h"
#include "devices/pci/pci_device.h"

namespace vmm::devices::pci {

inline constexpr uint16_t kConfigAddressPort = 0xcf8;
inline constexpr uint64_t kConfigIoSize = 8;      // 0xCF8..0xCFF
inline constexpr uint64_t kEcamBusSize = 1ull << 20;
inline constexpr int kSlotCount = 32;

// 00:00.0: identifies the bridge (class 0x0600) so Linux scans bus 0.
class HostBridge final : public PciDevice {
public:
    HostBridge();
    uint32_t config_read(uint16_t offset, uint8_t size) override;
    void config_write(uint16_t offset, uint8_t size, uint32_t value) override;
    std::vector<BarInfo> bars() const override { return {}; }

private:
    std::mutex m_mutex;
    ConfigSpace m_config;
};

class PciRoot {
public:
    PciRoot();

    // Into `slot` (1..31) or the first free one; returns the slot.
    [[nodiscard]] Result<uint8_t> attach(std::shared_ptr<PciDevice> device,
                                         std::optional<uint8_t> slot = std::nullopt);
    std::shared_ptr<PciDevice> device(uint8_t slot) const;
    // Empties `slot` (1..31); the device object lives on while others hold it.
    [[nodiscard]] Result<std::shared_ptr<PciDevice>> detach(uint8_t slot);

    // Called after a guest write that touches a function's command register or its
    // BARs (the decode windows may have moved), with the slot and the device. Runs on
    // the writing vCPU thread; set before the guest runs.
    using DecodeObserver = std::function<void(uint8_t slot, PciDevice& device)>;
    void set_decode_observer(DecodeObserver observer) { m_observer = std::move(observer); }

    // Checked accesses: wrong bus/function/slot, bad size, misalignment or an offset
    // past `limit` read all-ones / drop the write.
    uint32_t config_read(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset, uint8_t size,
                         uint32_t limit = kConfigSpaceSize) const;
    void config_write(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset, uint8_t size,
                      uint32_t value, uint32_t limit = kConfigSpaceSize);

private:
    std::shared_ptr<PciDevice> target(uint8_t bus, uint8_t slot, uint8_t function, uint16_t offset,
                                      uint8_t size, uint32_t limit) const;

    mutable std::mutex m_mutex;  // guards the slot table; devices lock themselves
    std::array<std::shared_ptr<PciDevice>, kSlotCount> m_slots;
    DecodeObserver m_observer;
};

// PIO device for 0xCF8..0xCFF (insert at kConfigAddressPort, size kConfigIoSize).
class PciConfigIo final : public BusDevice {
public:
    explicit PciConfigIo(std::shared_ptr<PciRoot> root) : m_root(std::move(root)) {}
    void read(uint64_t offset, std::span<std::byte> data) override;
    void write(uint64_t offset, std::span<const std::byte> data) override;

private:
    std::shared_ptr<PciRoot> m_root;
    std::atomic<uint32_t> m_address{0};
};

// MMIO device for ECAM bus 0 (insert at memory::kPciEcamBase, size kEcamBusSize).
class PciEcam final : public BusDevice {
public:
    explicit PciEcam(std::shared_ptr<PciRoot> root) : m_root(std::move(root)) {}
    void read(uint64_t offset, std::span<std::byte> data) override;
    void write(uint64_t offset, std::span<const std::byte> data) override;

private:
    std::shared_ptr<PciRoot> m_root;
};

}  // namespace vmm::devices::pci
