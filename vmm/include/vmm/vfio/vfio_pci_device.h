// A vfio-pci function assigned to the guest, as a PciDevice on the VMM's bus 0.
// Configuration space passes through, except what the VMM must own: the BARs
// (guest-programmed addresses, sizes from region info), the expansion ROM (hidden),
// the MSI-X control word and the whole MSI capability. The MSI-X table is trapped:
// each entry the guest writes becomes a route through MsiRouter (KVM GSI routing +
// irqfd, the VM's job). MSI's control, address, data and mask registers live here,
// never in the device: enabling MSI routes vectors 0..2^MME-1 of the same MsiRouter
// (data's low bits carry the vector number, as the PCI spec has the function do).
// vfio-pci runs one interrupt type at a time: INTx (an IntxRouter's irqfd and
// resamplefd) is given up while MSI or MSI-X is on and comes back when it goes off,
// and enabling MSI while MSI-X is on (or the reverse) is refused.
// BARs the kernel lets us mmap are handed to the VM as memory slots, except a BAR
// that holds the MSI-X table or PBA: a slot would let the guest bypass the table
// emulation, so that BAR is trapped (bar_read/bar_write) like the unmappable ones.
#pragma once

#include <array>
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

    // The BARs to map straight into the guest; never one holding the MSI-X table or PBA.
    std::vector<MappableBar> mappable_bars() const { return m_mappable; }
    // Accesses to a trapped BAR, offsets relative to the BAR; failures read all-ones.
    void bar_read(uint8_t bar, uint64_t offset, std::span<std::byte> data);
    void bar_write(uint8_t bar, uint64_t offset, std::span<const std::byte> data);

    bool msix_enabled() const;
    uint32_t msix_vectors() const { return static_cast<uint32_t>(m_msix_table.size()); }
    bool msi_enabled() const;
    // MSI vectors running now (2^MME while enabled, else 0).
    uint32_t msi_vectors() const;
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
    // The guest's MSI capability. Offsets are relative to the capability; the bytes
    // the guest sees (control, address, data, masks) are `regs`, except id, next and
    // the pending bits, which come from the device.
    struct MsiCap {
        static constexpr uint16_t kMaxSize = 24;  // 64-bit address with per-vector masks
        uint16_t offset = 0, size = 0;
        uint16_t data = 0, mask = 0;  // register offsets; mask 0: no per-vector masking
        bool is64 = false;
        uint8_t max_log2 = 0;  // advertised MMC: the device's, capped by the kernel's vector count
        bool usable = false;   // the kernel offers MSI vectors for this function
        std::array<uint8_t, kMaxSize> regs{}, writable{};
    };

    VfioPciDevice(std::shared_ptr<VfioContainer> container, std::string address, int fd, MsiRouter* msi,
                  IntxRouter* intx);
    [[nodiscard]] Result<void> init();
    [[nodiscard]] Result<void> enable_intx();
    [[nodiscard]] Result<void> disable_intx();
    [[nodiscard]] Result<void> restore_intx();
    [[nodiscard]] Result<void> start_vectors(uint32_t index, uint32_t count);
    [[nodiscard]] Result<void> set_msix(bool enable, bool function_mask);
    [[nodiscard]] Result<void> push_route(uint32_t vector, bool force_mask = false);
    [[nodiscard]] Result<void> init_msi(uint16_t cap);
    bool in_msi_cap(uint16_t offset) const;
    uint32_t msi_config_read(uint16_t offset, uint8_t size);
    [[nodiscard]] Result<void> msi_config_write(uint16_t offset, uint8_t size, uint32_t value);
    [[nodiscard]] Result<void> enable_msi(uint32_t count);
    [[nodiscard]] Result<void> disable_msi();
    [[nodiscard]] Result<void> push_msi_routes(uint32_t count, bool force_mask);
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
    std::optional<MsiCap> m_msi_cap;
    uint32_t m_msi_vectors = 0;    // running MSI vectors, 0 while MSI is off
    bool m_intx_capable = false;  // a pin, kernel INTx and a router: INTx runs when nothing else does
    bool m_intx_enabled = false;
};

}  // namespace vmm::vfio
