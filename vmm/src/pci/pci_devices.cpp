#include "vmm/pci/pci_devices.h"

#include <algorithm>
#include <cctype>

#include "balloon/hyperalloc/hyperalloc_device.h"
#include "balloon/virtio_balloon.h"
#include "common/log.h"
#include "memory/x86_64_layout.h"
#include "vmm/pci/kvm_irq_routers.h"
#include "vmm/vfio/vfio_pci_device.h"

namespace vmm::pci {

namespace dp = devices::pci;
namespace layout = memory::x86_64;

namespace {

constexpr uint8_t kIntxFirstGsi = 16;  // IOAPIC pins 16..23 carry PCI INTx
constexpr uint8_t kIntxPins = 8;

log::RateLimiter g_limiter;

template <typename... Args>
void warn_limited(fmt::format_string<Args...> f, Args&&... args) {
    if (g_limiter.allow()) log::warn(f, std::forward<Args>(args)...);
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

bool is_hex(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

// A trapped BAR: every access goes to the function through the VFIO region.
class TrappedBar final : public devices::BusDevice {
public:
    TrappedBar(std::shared_ptr<vfio::VfioPciDevice> device, uint8_t bar) : m_device(std::move(device)), m_bar(bar) {}
    void read(uint64_t offset, std::span<std::byte> data) override { m_device->bar_read(m_bar, offset, data); }
    void write(uint64_t offset, std::span<const std::byte> data) override { m_device->bar_write(m_bar, offset, data); }

private:
    std::shared_ptr<vfio::VfioPciDevice> m_device;
    uint8_t m_bar;
};

}  // namespace

// One assigned function. Member order matters: the device goes before the routers
// it points to.
struct PciDevices::Function {
    struct Window {
        dp::BarInfo bar;                    // as mapped (address, size, kind)
        std::optional<uint32_t> memslot;    // mmap-able BAR: a KVM memory slot
        devices::Bus* bus = nullptr;        // trapped BAR: the bus range it occupies
    };
    std::string id;
    uint8_t slot = 0;
    std::string host_address;
    std::unique_ptr<KvmMsiRouter> msi;
    std::unique_ptr<KvmIntxRouter> intx;
    std::shared_ptr<vfio::VfioPciDevice> device;
    std::map<uint8_t, Window> windows;  // by BAR index, only those decoding now
};

Result<std::string> pci_address_from_path(const std::string& path) {
    std::string_view p = path;
    while (!p.empty() && p.back() == '/') p.remove_suffix(1);
    if (auto slash = p.rfind('/'); slash != std::string_view::npos) p = p.substr(slash + 1);
    // DDDD:BB:SS.F
    bool ok_form = p.size() == 12 && p[4] == ':' && p[7] == ':' && p[10] == '.' && is_hex(p.substr(0, 4)) &&
                   is_hex(p.substr(5, 2)) && is_hex(p.substr(8, 2)) && p[11] >= '0' && p[11] <= '7';
    if (!ok_form || std::stoul(std::string(p.substr(8, 2)), nullptr, 16) > 31)
        return Error(fmt::format("'{}' does not name a PCI function (expected /sys/bus/pci/devices/DDDD:BB:SS.F/ "
                                 "or DDDD:BB:SS.F)", path), EINVAL);
    std::string address(p);
    std::transform(address.begin(), address.end(), address.begin(),
                   [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
    return address;
}

Result<std::unique_ptr<PciDevices>> PciDevices::create(PciEnvironment env) {
    if (!env.vm || !env.pio || !env.mmio || !env.memory) return Error::msg("PCI: incomplete environment");
    if (!env.backend) return Error::msg("PCI: no VFIO backend");
    std::unique_ptr<PciDevices> pci(new PciDevices(std::move(env)));
    const kvm::VmFd* vm = pci->m_env.vm;
    pci->m_gsis = std::make_unique<GsiRouter>(
        [vm](std::span<const kvm_irq_routing_entry> table) { return vm->set_gsi_routing(table); }, 1024);
    VMM_TRY_CTX(pci->m_env.pio->insert(std::make_shared<dp::PciConfigIo>(pci->m_root), dp::kConfigAddressPort,
                                       dp::kConfigIoSize), "PCI configuration ports");
    VMM_TRY_CTX(pci->m_env.mmio->insert(std::make_shared<dp::PciEcam>(pci->m_root), layout::kPciEcamBase,
                                        dp::kEcamBusSize), "PCI ECAM");
    PciDevices* raw = pci.get();
    pci->m_root->set_decode_observer([raw](uint8_t slot, dp::PciDevice&) { raw->update_decode(slot); });
    return pci;
}

PciDevices::PciDevices(PciEnvironment env) : m_env(std::move(env)), m_root(std::make_shared<dp::PciRoot>()) {
    m_next_mem32 = layout::kPciMmio32Base;
    m_next_mem64 = align_up(std::max(m_env.memory->end_address().raw, layout::kHighRamStart), layout::GiB);
    m_next_io = layout::kPciIoBase;
}

PciDevices::~PciDevices() {
    std::lock_guard lock(m_mutex);
    for (auto& [slot, f] : m_functions) {
        (void)m_root->detach(slot);
        unmap_bars(*f);
    }
    m_functions.clear();
    stop_dma();
}

Result<void> PciDevices::start_dma() {
    // First function: the container now has a group and an IOMMU; map RAM before
    // the function becomes visible to the guest.
    if (m_env.hyperalloc) return m_env.hyperalloc->attach_dma_mapper(m_container, *m_env.memory);
    if (m_env.virtio_balloon) m_env.virtio_balloon->set_pinned(true);
    return m_container->map_all_ram();
}

void PciDevices::stop_dma() {
    if (!m_container) return;
    if (m_env.hyperalloc) m_env.hyperalloc->detach_dma_mapper();
    if (m_env.virtio_balloon) m_env.virtio_balloon->set_pinned(false);
    m_container.reset();  // closing it unmaps everything
}

Result<PciDeviceInfo> PciDevices::add(const VfioDeviceConfig& config) {
    std::string address = VMM_TRY(pci_address_from_path(config.path));
    std::lock_guard lock(m_mutex);
    std::string id = config.id.empty() ? fmt::format("vfio{}", m_next_id) : config.id;
    for (const auto& [s, f] : m_functions) {
        if (f->id == id) return Error(fmt::format("a device with id '{}' exists", id), EEXIST);
        if (f->host_address == address)
            return Error(fmt::format("PCI device {} is already assigned to this VM (as '{}')", address, f->id), EBUSY);
    }
    uint8_t slot = 0;
    for (uint8_t s = 1; s < dp::kSlotCount && slot == 0; ++s)
        if (!m_root->device(s)) slot = s;
    if (slot == 0) return Error::msg("PCI bus 0 is full ({} slots)", dp::kSlotCount - 1);

    const bool first = !m_container;
    if (first) m_container = VMM_TRY(vfio::VfioContainer::open(m_env.backend, *m_env.memory));
    auto fail = [&](Error e) -> Error {
        if (first) stop_dma();
        return e;
    };
    auto f = std::make_unique<Function>();
    f->id = id;
    f->slot = slot;
    f->host_address = address;
    f->msi = std::make_unique<KvmMsiRouter>(*m_env.vm, *m_gsis);
    auto intx = KvmIntxRouter::create(*m_env.vm, kIntxFirstGsi + (slot - 1u) % kIntxPins);
    if (!intx) return fail(intx.error().context("INTx"));
    f->intx = std::move(*intx);
    auto device = vfio::VfioPciDevice::open(m_container, address, f->msi.get(), f->intx.get());
    if (!device) return fail(device.error());
    f->device = std::move(*device);
    if (first) {
        if (auto dma = start_dma(); !dma) {
            f.reset();
            return fail(dma.error().context(fmt::format("VFIO device {}: DMA mapping of guest RAM", address)));
        }
    }
    // Addresses as firmware would assign them, naturally aligned; decoding stays off
    // until the guest's driver enables it.
    for (const dp::BarInfo& bar : f->device->bars()) {
        uint64_t& next = bar.kind == dp::BarKind::Io ? m_next_io
                         : bar.kind == dp::BarKind::Memory64 ? m_next_mem64 : m_next_mem32;
        uint64_t limit = bar.kind == dp::BarKind::Io ? layout::kPciIoEnd
                         : bar.kind == dp::BarKind::Memory64
                             ? align_up(std::max(m_env.memory->end_address().raw, layout::kHighRamStart), layout::GiB) +
                                   layout::kPciMmio64Size
                             : layout::kPciMmio32Base + layout::kPciMmio32Size;
        uint64_t at = align_up(next, bar.size);
        if (at + bar.size > limit) {
            f.reset();
            return fail(Error::msg("VFIO device {}: no room for BAR {} ({:#x} bytes) in the PCI window", address,
                                   bar.index, bar.size));
        }
        next = at + bar.size;
        auto reg = static_cast<uint16_t>(dp::kBar0 + 4 * bar.index);
        f->device->config_write(reg, 4, static_cast<uint32_t>(at));
        if (bar.kind == dp::BarKind::Memory64) f->device->config_write(reg + 4, 4, static_cast<uint32_t>(at >> 32));
    }
    uint8_t pin = static_cast<uint8_t>(f->device->config_read(dp::kInterruptPin, 1));
    if (pin >= 1 && pin <= 4) f->device->config_write(dp::kInterruptLine, 1, f->intx->gsi());
    if (auto attached = m_root->attach(f->device, slot); !attached) {
        f.reset();
        return fail(attached.error());
    }
    ++m_next_id;
    PciDeviceInfo info{id, fmt::format("0000:00:{:02x}.0", slot), address};
    log::info("VFIO device {} ({}) at {}", id, address, info.bdf);
    m_functions.emplace(slot, std::move(f));
    return info;
}

Result<void> PciDevices::remove(const std::string& id) {
    std::lock_guard lock(m_mutex);
    auto it = std::find_if(m_functions.begin(), m_functions.end(), [&](const auto& e) { return e.second->id == id; });
    if (it == m_functions.end()) return Error(fmt::format("no device with id '{}'", id), ENOENT);
    // Out of the guest's reach first, then the windows, then the function itself
    // (which disables its interrupts and resets it), then its routes.
    (void)m_root->detach(it->first);
    unmap_bars(*it->second);
    m_functions.erase(it);
    if (m_functions.empty()) stop_dma();
    log::info("VFIO device {} removed", id);
    return ok();
}

std::vector<PciDeviceInfo> PciDevices::list() const {
    std::lock_guard lock(m_mutex);
    std::vector<PciDeviceInfo> out;
    for (const auto& [slot, f] : m_functions)
        out.push_back({f->id, fmt::format("0000:00:{:02x}.0", slot), f->host_address});
    return out;
}

std::vector<boot::PciIrqLine> PciDevices::intx_lines() const {
    std::lock_guard lock(m_mutex);
    std::vector<boot::PciIrqLine> lines;
    for (const auto& [slot, f] : m_functions) {
        auto pin = static_cast<uint8_t>(f->device->config_read(dp::kInterruptPin, 1));
        if (pin >= 1 && pin <= 4) lines.push_back({slot, pin, static_cast<uint8_t>(f->intx->gsi())});
    }
    return lines;
}

std::shared_ptr<vfio::VfioContainer> PciDevices::container() const {
    std::lock_guard lock(m_mutex);
    return m_container;
}

void PciDevices::unmap_bars(Function& f) {
    for (auto& [index, w] : f.windows) {
        if (w.memslot) {
            if (auto r = m_env.vm->delete_memory_region(*w.memslot); !r)
                log::error("VFIO {}: BAR {}: {}", f.id, index, r.error().message());
            m_free_memslots.push_back(*w.memslot);
        } else if (w.bus) {
            (void)w.bus->remove(w.bar.address);
        }
    }
    f.windows.clear();
}

void PciDevices::update_decode(uint8_t slot) {
    std::lock_guard lock(m_mutex);
    auto it = m_functions.find(slot);
    if (it == m_functions.end()) return;  // removed meanwhile
    Function& f = *it->second;
    auto command = static_cast<uint16_t>(f.device->config_read(dp::kCommand, 2));
    auto mappable = f.device->mappable_bars();
    for (const dp::BarInfo& bar : f.device->bars()) {
        const bool io = bar.kind == dp::BarKind::Io;
        bool decode = (command & (io ? dp::kCommandIo : dp::kCommandMemory)) != 0 && bar.address != 0 &&
                      bar.address + bar.size > bar.address && (!io || bar.address + bar.size <= layout::kPciIoEnd);
        auto current = f.windows.find(bar.index);
        if (current != f.windows.end()) {
            if (decode && current->second.bar.address == bar.address) continue;  // unchanged
            Function::Window old = current->second;
            f.windows.erase(current);
            if (old.memslot) {
                if (auto r = m_env.vm->delete_memory_region(*old.memslot); !r)
                    log::error("VFIO {}: BAR {}: {}", f.id, bar.index, r.error().message());
                m_free_memslots.push_back(*old.memslot);
            } else if (old.bus) {
                (void)old.bus->remove(old.bar.address);
            }
        }
        if (!decode) continue;
        Function::Window w{bar, std::nullopt, nullptr};
        auto direct = std::find_if(mappable.begin(), mappable.end(),
                                   [&](const vfio::MappableBar& m) { return m.index == bar.index; });
        if (direct != mappable.end()) {
            uint32_t memslot = m_next_memslot;
            if (!m_free_memslots.empty()) {
                memslot = m_free_memslots.back();
                m_free_memslots.pop_back();
            } else {
                ++m_next_memslot;
            }
            auto r = m_env.vm->set_user_memory_region(memslot, memory::GuestAddress(bar.address), bar.size,
                                                      reinterpret_cast<uint64_t>(direct->host));
            if (!r) {
                m_free_memslots.push_back(memslot);
                warn_limited("VFIO {}: BAR {} at {:#x} not mapped: {}", f.id, bar.index, bar.address,
                             r.error().message());
                continue;
            }
            w.memslot = memslot;
        } else {
            devices::Bus* bus = io ? m_env.pio : m_env.mmio;
            if (auto r = bus->insert(std::make_shared<TrappedBar>(f.device, bar.index), bar.address, bar.size); !r) {
                warn_limited("VFIO {}: BAR {} at {:#x} not mapped: {}", f.id, bar.index, bar.address,
                             r.error().message());
                continue;
            }
            w.bus = bus;
        }
        log::debug("VFIO {}: BAR {} decodes at {:#x} (+{:#x}, {})", f.id, bar.index, bar.address, bar.size,
                   w.memslot ? "memory slot" : "trapped");
        f.windows.emplace(bar.index, w);
    }
}

}  // namespace vmm::pci
