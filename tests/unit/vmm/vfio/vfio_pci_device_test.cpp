// VfioPciDevice over the simulated vfio-pci function: virtual BARs, MSI-X table
// trapping into routes, INTx, reset, and the errors a user can run into.
#include "vfio_test_support.h"

#include <catch2/catch.hpp>

#include <cstring>

#include "devices/pci/pci_root.h"

using namespace vmm;
using namespace vmm::vfio;
using namespace vmm::vfio::test;
namespace pci = vmm::devices::pci;

TEST_CASE("open resets the device, maps BAR0 and wires INTx", "[vfio][pci]") {
    Assigned a;
    CHECK(a.fn().resets == 1);
    auto mappable = a.dev->mappable_bars();
    REQUIRE(mappable.size() == 1);
    CHECK(mappable[0].index == 0);
    CHECK(mappable[0].size == sim::kBar0Size);
    CHECK(mappable[0].host == a.fn().bar0.data());
    CHECK(a.fn().irqs.at(VFIO_PCI_INTX_IRQ_INDEX).at(0) == 500);
    CHECK(a.fn().irqs.at(VFIO_PCI_INTX_IRQ_INDEX + 100).at(0) == 501);  // resamplefd
    a.dev.reset();
    CHECK(a.fn().resets == 2);  // and again when released
    CHECK_FALSE(a.fn().opened);
    CHECK(a.fn().irqs.empty());
}

TEST_CASE("BARs are virtual: sizes from region info, addresses from the guest", "[vfio][pci]") {
    Assigned a;
    for (uint16_t off = pci::kBar0; off < pci::kBar0 + 24; off += 4) a.dev->config_write(off, 4, 0xffffffff);
    CHECK(a.dev->config_read(pci::kBar0, 4) == (0xffffffffu & ~(sim::kBar0Size - 1)) + 0xc);
    CHECK(a.dev->config_read(pci::kBar0 + 4, 4) == 0xffffffffu);
    CHECK(a.dev->config_read(pci::kBar0 + 8, 4) == ~uint32_t(sim::kBar2Size - 1));
    CHECK(a.dev->config_read(pci::kBar0 + 12, 4) == 0u);
    a.dev->config_write(pci::kBar0, 4, 0xfe000000);
    a.dev->config_write(pci::kBar0 + 4, 4, 0x1);
    a.dev->config_write(pci::kBar0 + 8, 4, 0xfebf0000);
    auto bars = a.dev->bars();
    REQUIRE(bars.size() == 2);
    CHECK(bars[0].kind == pci::BarKind::Memory64);
    CHECK(bars[0].prefetchable);
    CHECK(bars[0].address == 0x1fe000000ull);
    CHECK(bars[1].index == 2);
    CHECK(bars[1].address == 0xfebf0000u);
    // The device's own BAR registers were never touched.
    CHECK(a.fn().config[0x10] == 0x0c);
    CHECK(a.fn().config[0x13] == 0x00);
    // Expansion ROM hidden; IDs and command pass through.
    CHECK(a.dev->config_read(pci::kExpansionRom, 4) == 0u);
    CHECK(a.dev->config_read(pci::kVendorId, 4) == 0x10fb8086u);
    a.dev->config_write(pci::kCommand, 2, pci::kCommandMemory | pci::kCommandBusMaster);
    CHECK(a.fn().config[0x04] == (pci::kCommandMemory | pci::kCommandBusMaster));
    CHECK(a.dev->config_read(pci::kCommand, 2) == (pci::kCommandMemory | pci::kCommandBusMaster));
}

TEST_CASE("MSI-X table writes become routes; enable and masks are honoured", "[vfio][pci]") {
    Assigned a;
    CHECK(a.dev->msix_vectors() == sim::kMsixVectors);
    a.table_write(3, 0, 0xfee01000);
    a.table_write(3, 4, 0);
    a.table_write(3, 8, 0x4041);
    a.table_write(3, 12, 0);  // unmask
    CHECK(a.msi.route_calls == 0);  // MSI-X is still off
    CHECK(a.bar_read32(2, 3 * 16 + 8) == 0x4041u);
    CHECK(a.fn().bar2[3 * 16 + 8] == std::byte{0});  // the table is trapped, not passed through

    uint16_t ctl = sim::kMsixCap + 2;
    a.dev->config_write(ctl, 2, 0x8000);
    CHECK(a.dev->msix_enabled());
    CHECK((a.dev->config_read(ctl, 2) & 0xc000) == 0x8000);
    CHECK(a.fn().irqs.count(VFIO_PCI_INTX_IRQ_INDEX) == 0);  // INTx gave way
    REQUIRE(a.fn().irqs.at(VFIO_PCI_MSIX_IRQ_INDEX).size() == sim::kMsixVectors);
    CHECK(a.fn().irqs.at(VFIO_PCI_MSIX_IRQ_INDEX)[3] == 1003);
    REQUIRE(a.msi.routes.size() == sim::kMsixVectors);
    CHECK(a.msi.routes[3].message.address == 0xfee01000u);
    CHECK(a.msi.routes[3].message.data == 0x4041u);
    CHECK_FALSE(a.msi.routes[3].masked);
    CHECK(a.msi.routes[4].masked);  // never unmasked by the guest

    // Per-vector mask, then the function mask (via a byte write to the upper control byte).
    a.table_write(3, 12, 1);
    CHECK(a.msi.routes[3].masked);
    a.table_write(3, 12, 0);
    CHECK_FALSE(a.msi.routes[3].masked);
    a.dev->config_write(ctl + 1, 1, 0xc0);
    CHECK(a.msi.routes[3].masked);
    CHECK((a.dev->config_read(ctl, 2) & 0xc000) == 0xc000);
    a.dev->config_write(ctl + 1, 1, 0x80);
    CHECK_FALSE(a.msi.routes[3].masked);
    // A new message for a live vector is routed at once.
    a.table_write(3, 8, 0x4052);
    CHECK(a.msi.routes[3].message.data == 0x4052u);

    a.dev->config_write(ctl, 2, 0);
    CHECK_FALSE(a.dev->msix_enabled());
    CHECK(a.fn().irqs.count(VFIO_PCI_MSIX_IRQ_INDEX) == 0);
    CHECK(a.msi.routes[3].masked);
    CHECK(a.fn().irqs.at(VFIO_PCI_INTX_IRQ_INDEX).at(0) == 500);  // INTx is back
}

TEST_CASE("the PBA and the rest of a trapped BAR pass through; bad accesses read all-ones", "[vfio][pci]") {
    Assigned a;
    a.fn().bar2[sim::kPbaOffset] = std::byte{0x08};
    CHECK(a.bar_read32(2, sim::kPbaOffset) == 0x08u);
    std::byte b[4] = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    a.dev->bar_write(2, 0x3000, b);
    CHECK(a.fn().bar2[0x3002] == std::byte{3});
    CHECK(a.bar_read32(2, sim::kBar2Size) == 0xffffffffu);   // past the end
    CHECK(a.bar_read32(5, 0) == 0xffffffffu);                // no such BAR
    CHECK(a.bar_read32(2, 2) == 0xffffffffu);                // misaligned table access
    std::byte two[2];
    a.dev->bar_read(2, 0, two);                              // word access to the table
    CHECK(two[0] == std::byte{0xff});
    a.dev->bar_write(2, ~0ull - 1, b);                       // wrapping offset: ignored
}

TEST_CASE("a BAR holding the MSI-X table or PBA stays trapped even when the kernel lets it be mapped",
          "[vfio][pci]") {
    SECTION("table BAR flagged MMAP") {
        Assigned a([](sim::SimFunction& f) { f.bar2_mmap = true; });
        auto mappable = a.dev->mappable_bars();
        REQUIRE(mappable.size() == 1);
        CHECK(mappable[0].index == 0);
        // Still emulated: the entry lands in a route, not in the device's table.
        a.table_write(5, 0, 0xfee02000);
        a.table_write(5, 8, 0x4061);
        a.table_write(5, 12, 0);
        a.dev->config_write(sim::kMsixCap + 2, 2, 0x8000);
        REQUIRE(a.dev->msix_enabled());
        CHECK(a.msi.routes.at(5).message.address == 0xfee02000u);
        CHECK(a.msi.routes.at(5).message.data == 0x4061u);
        CHECK_FALSE(a.msi.routes.at(5).masked);
        CHECK(a.fn().bar2[5 * 16 + 8] == std::byte{0});
    }
    SECTION("PBA in the mmap-able BAR0") {
        Assigned a([](sim::SimFunction& f) {
            f.config[sim::kMsixCap + 8] = 0x00;  // PBA: BAR0 offset 0x8000
            f.config[sim::kMsixCap + 9] = 0x80;
        });
        CHECK(a.dev->mappable_bars().empty());
        a.fn().bar0[0x8000] = std::byte{0x21};
        CHECK(a.bar_read32(0, 0x8000) == 0x21u);  // trapped and passed through
    }
}

TEST_CASE("a failed MSI-X enable leaves INTx running and the vectors masked", "[vfio][pci]") {
    Assigned a;
    a.table_write(0, 12, 0);
    a.msi.fail_eventfds = true;
    a.dev->config_write(sim::kMsixCap + 2, 2, 0x8000);
    CHECK_FALSE(a.dev->msix_enabled());
    CHECK((a.dev->config_read(sim::kMsixCap + 2, 2) & 0x8000) == 0);
    CHECK(a.fn().irqs.count(VFIO_PCI_MSIX_IRQ_INDEX) == 0);
    CHECK(a.msi.routes.at(0).masked);
    CHECK(a.fn().irqs.at(VFIO_PCI_INTX_IRQ_INDEX).at(0) == 500);
    CHECK(a.fn().irqs.at(VFIO_PCI_INTX_IRQ_INDEX + 100).at(0) == 501);
    a.msi.fail_eventfds = false;  // the guest's next try works
    a.dev->config_write(sim::kMsixCap + 2, 2, 0x8000);
    CHECK(a.dev->msix_enabled());
    CHECK_FALSE(a.msi.routes.at(0).masked);
}

TEST_CASE("assignment errors are clear", "[vfio][pci]") {
    Host host;
    RecordingMsiRouter msi;
    auto c = host.container();

    auto wrong = VfioPciDevice::open(c, "0000:09:00.0", &msi, nullptr);
    REQUIRE_FALSE(wrong.has_value());
    CHECK(wrong.error().errno_value() == ENOENT);
    CHECK(wrong.error().message().find("no PCI device 0000:09:00.0") == 0);

    host.sim->add_function("0000:02:00.0", 8).busy = true;
    auto busy = VfioPciDevice::open(c, "0000:02:00.0", &msi, nullptr);
    REQUIRE_FALSE(busy.has_value());
    CHECK(busy.error().message() == "PCI device 0000:02:00.0 is busy (opened by another VFIO user)");

    host.sim->add_function("0000:03:00.0", 9);
    host.sim->groups[9].viable = false;
    auto unviable = VfioPciDevice::open(c, "0000:03:00.0", &msi, nullptr);
    REQUIRE_FALSE(unviable.has_value());
    CHECK(unviable.error().message().find("VFIO device 0000:03:00.0: VFIO group 9 is not viable") == 0);

    auto first = VfioPciDevice::open(c, kAddress, &msi, nullptr);
    REQUIRE(first.has_value());
    auto twice = VfioPciDevice::open(c, kAddress, &msi, nullptr);
    REQUIRE_FALSE(twice.has_value());
    CHECK(twice.error().message() == "PCI device 0000:01:00.0 is already assigned to this VM");
    first->reset();
    CHECK(VfioPciDevice::open(c, kAddress, &msi, nullptr).has_value());  // released with the device
}

TEST_CASE("a malformed MSI-X capability is refused at open", "[vfio][pci]") {
    Host host;
    host.sim->functions.at(kAddress).config[sim::kMsixCap + 2] = 0xff;  // 256 vectors: past BAR2's table room?
    host.sim->functions.at(kAddress).config[sim::kMsixCap + 3] = 0x07;  // 2048 vectors: 32 KiB > 16 KiB BAR
    auto c = host.container();
    auto d = VfioPciDevice::open(c, kAddress, nullptr, nullptr);
    REQUIRE_FALSE(d.has_value());
    CHECK(d.error().message().find("MSI-X table") != std::string::npos);
    CHECK_FALSE(host.sim->functions.at(kAddress).opened);  // nothing left open
}

TEST_CASE("the assigned function is reachable through the PCI root", "[vfio][pci]") {
    Assigned a;
    pci::PciRoot root;
    auto slot = root.attach(a.dev);
    REQUIRE(slot.has_value());
    CHECK(root.config_read(0, *slot, 0, pci::kVendorId, 2) == 0x8086u);
    CHECK(root.config_read(0, *slot, 0, pci::kClassRevision, 4) >> 8 == 0x020000u);
    CHECK(root.config_read(0, *slot, 0, pci::kCapabilityPointer, 1) == 0x40u);
    CHECK(root.config_read(0, *slot, 0, sim::kMsixCap + 1, 1) == sim::kMsiCap);
    CHECK(root.config_read(0, *slot, 0, sim::kMsiCap, 1) == pci::kCapIdMsi);
}
