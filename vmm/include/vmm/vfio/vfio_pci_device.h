// A vfio-pci function assigned to the guest, as a PciDevice on the VMM's bus 0.
// Configuration space passes through, except what the VMM must own: the BARs
// (guest-programmed addresses, sizes from region info), the expansion ROM (hidden)
// and the MSI-X control word. The MSI-X table is trapped: each entry the guest
// writes becomes a route through MsiRouter (KVM GSI routing + irqfd, the VM's job);
// INTx goes to an IntxRouter's irqfd and resamplefd. BARs the kernel lets us mmap
// are handed to the VM as memory slots; the others are trapped (bar_read/bar_write).
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "devices/pci/config_space.h"
#include "devices/pci/pci_device.h"
#include "vmm/vfio/vfio_container.h"

namespace vmm::vfio {

struct MsiMessage {
    uint64_t address = 0;
    uint32_t data = 0;
};

class MsiRouter {
public:
    virtual ~MsiRouter() = default;
    // The eventfd that injects `vector` (an irqfd on the vector's GSI).
    [[nodiscard]] virtual Result<int> vector_eventfd(uint32_t vector) = 0;
    // Points the vector's GSI at `message`; a masked vector must not be delivered.
    [[nodiscard]] virtual Result<void> set_route(uint32_t vector, const MsiMessage& message, bool masked) = 0;
};

class IntxRouter {
public:
    virtual ~IntxRouter() = default;
    [[nodiscard]] virtual Result<int> trigger_eventfd() = 0;   // irqfd on the line's GSI
    [[nodiscard]] virtual Result<int> resample_eventfd() = 0;  // signalled at guest EOI
};

struct MappableBar {
    uint8_t index = 0;
    uint64_t size = 0;
    void* host = nullptr;
};

class VfioPciDevice final : public devices::pci::PciDevice {
public:
    // pci_address is the host's "0000:01:00.0". The routers must outlive the device.
    [[nodiscard]] static Result<std::shared_ptr<VfioPciDevice>> open(std::shared_ptr<VfioContainer> container,
                                                                     const std::string& pci_address,
                                                                     MsiRouter* msi, IntxRouter* intx);
    ~VfioPciDevice() override;
    VfioPciDevice(const VfioPciDevice&) = delete;
    VfioPciDevice& operator=(const VfioPciDevice&) = delete;

    uint32_t config_read(uint16_t offset, uint8_t size) override;
    void config_write(uint16_t offset, uint8_t size, uint32_t value) override;
    std::vector<devices::pci::BarInfo> bars() const override;

    std::vector<MappableBar> mappable_bars() const { return m_mappable; }
    // Accesses to a trapped BAR, offsets relative to the BAR; failures read all-ones.
    void bar_read(uint8_t bar, uint64_t offset, std::span<std::byte> data);
    void bar_write(uint8_t bar, uint64_t offset, std::span<const std::byte> data);

    bool msix_enabled() const;
    uint32_t msix_vectors() const { return static_cast<uint32_t>(m_msix_table.size()); }
    const std::string& address() const { return m_address; }

private:
    struct MsixEntry {
        uint32_t address_lo = 0, address_hi = 0, data = 0, control = 1;  // masked at reset
    };
    struct MsixLayout {
        uint16_t cap = 0;
        uint8_t table_bar = 0, pba_bar = 0;
        uint32_t table_offset = 0, pba_offset = 0;
    };

    VfioPciDevice(std::shared_ptr<VfioContainer> container, std::string address, int fd, MsiRouter* msi,
                  IntxRouter* intx);
    [[nodiscard]] Result<void> init();
    [[nodiscard]] Result<void> enable_intx();
    [[nodiscard]] Result<void> set_msix(bool enable, bool function_mask);
    [[nodiscard]] Result<void> push_route(uint32_t vector);
    uint32_t device_config(uint16_t offset, uint8_t size);
    bool in_msix_table(uint8_t bar, uint64_t offset, size_t size) const;

    std::shared_ptr<VfioContainer> m_container;
    VfioBackend& m_backend;
    const std::string m_address;
    const int m_fd;
    MsiRouter* m_msi;
    IntxRouter* m_intx;

    mutable std::mutex m_mutex;
    devices::pci::ConfigSpace m_virtual;  // only the BAR registers are used
    uint64_t m_config_offset = 0;
    std::array<RegionInfo, devices::pci::kBarCount> m_regions{};
    std::vector<MappableBar> m_mappable;
    std::optional<MsixLayout> m_msix;
    std::vector<MsixEntry> m_msix_table;
    bool m_msix_enabled = false;
    bool m_msix_masked = false;
    bool m_intx_enabled = false;
};

}  // namespace vmm::vfio
