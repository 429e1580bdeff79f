// VfioPciDevice's MSI (non-X) emulation over the simulated function: the guest's
// view of the capability (virtual, never written to the device), enabling 1 and 4
// vectors (eventfds in the kernel's MSI index, routes with data | vector, masks),
// re-routing while enabled, MSI vs MSI-X, and INTx given up and restored.
#include "vfio_test_support.h"

#include <catch2/catch.hpp>

#include <algorithm>

using namespace vmm;
using namespace vmm::vfio;
using namespace vmm::vfio::test;
namespace pci = vmm::devices::pci;

namespace {

constexpr uint16_t kCtl = sim::kMsiControl;
constexpr uint16_t kMsiEnd = sim::kMsiCap + 24;

uint32_t control(Assigned& a) { return a.dev->config_read(kCtl, 2); }

void program(Assigned& a, uint64_t address, uint16_t data) {
    a.dev->config_write(sim::kMsiAddressLo, 4, static_cast<uint32_t>(address));
    a.dev->config_write(sim::kMsiAddressHi, 4, static_cast<uint32_t>(address >> 32));
    a.dev->config_write(sim::kMsiData, 2, data);
}

// No byte of the capability reached the device's configuration space.
bool device_msi_untouched(Assigned& a, const std::vector<uint8_t>& config_at_open) {
    auto& f = a.fn();
    bool written = std::any_of(f.config_written.begin(), f.config_written.end(),
                               [](uint16_t off) { return off >= sim::kMsiCap && off < kMsiEnd; });
    return !written && std::equal(f.config.begin() + sim::kMsiCap, f.config.begin() + kMsiEnd,
                                  config_at_open.begin() + sim::kMsiCap);
}

bool intx_on(Assigned& a) {
    auto& irqs = a.fn().irqs;
    return irqs.count(VFIO_PCI_INTX_IRQ_INDEX) && irqs.at(VFIO_PCI_INTX_IRQ_INDEX).at(0) == 500 &&
           irqs.count(VFIO_PCI_INTX_IRQ_INDEX + 100) && irqs.at(VFIO_PCI_INTX_IRQ_INDEX + 100).at(0) == 501;
}

bool intx_off(Assigned& a) {
    return a.fn().irqs.count(VFIO_PCI_INTX_IRQ_INDEX) == 0 && a.fn().irqs.count(VFIO_PCI_INTX_IRQ_INDEX + 100) == 0;
}

}  // namespace

TEST_CASE("the guest sees a virtual MSI capability", "[vfio][pci][msi]") {
    Assigned a;
    a.fn().config[sim::kMsiPending] = 0x5;  // the device has vectors 0 and 2 pending
    const std::vector<uint8_t> at_open = a.fn().config;
    auto caps = pci::walk_capabilities([&](uint16_t off) { return static_cast<uint8_t>(a.dev->config_read(off, 1)); });
    CHECK(std::any_of(caps.begin(), caps.end(),
                      [](const pci::Capability& c) { return c.id == pci::kCapIdMsi && c.offset == sim::kMsiCap; }));
    // Id and next from the device; control: PVM, 64-bit, MMC = 4 vectors, off.
    CHECK(a.dev->config_read(sim::kMsiCap, 4) == 0x01840005u);
    CHECK(control(a) == 0x0184u);

    a.dev->config_write(sim::kMsiAddressLo, 4, 0xfee01003);
    CHECK(a.dev->config_read(sim::kMsiAddressLo, 4) == 0xfee01000u);  // dword aligned
    a.dev->config_write(sim::kMsiAddressHi, 4, 0x12345678);
    CHECK(a.dev->config_read(sim::kMsiAddressHi, 4) == 0x12345678u);
    a.dev->config_write(sim::kMsiData, 4, 0xabcd4041);
    CHECK(a.dev->config_read(sim::kMsiData, 4) == 0x4041u);  // no extended message data
    CHECK(a.dev->config_read(sim::kMsiData + 1, 1) == 0x40u);
    a.dev->config_write(sim::kMsiMask, 4, 0xffffffff);
    CHECK(a.dev->config_read(sim::kMsiMask, 4) == 0xfu);  // one bit per implemented vector

    // Pending bits are the device's, and read-only.
    CHECK(a.dev->config_read(sim::kMsiPending, 4) == 0x5u);
    a.dev->config_write(sim::kMsiPending, 4, 0);
    CHECK(a.dev->config_read(sim::kMsiPending, 4) == 0x5u);

    // MME beyond MMC is held at MMC; MMC, 64-bit and PVM are read-only.
    a.dev->config_write(kCtl, 2, 0xfe70);
    CHECK(control(a) == (0x0184u | 2u << 4));
    CHECK_FALSE(a.dev->msi_enabled());
    CHECK(a.fn().irqs.count(VFIO_PCI_MSI_IRQ_INDEX) == 0);
    CHECK(device_msi_untouched(a, at_open));
}

TEST_CASE("MSI with one vector: INTx gives way and comes back", "[vfio][pci][msi]") {
    Assigned a;
    const std::vector<uint8_t> at_open = a.fn().config;
    REQUIRE(intx_on(a));
    program(a, 0xfee00000, 0x4021);
    CHECK(a.msi.route_calls == 0);  // nothing routed while off

    a.dev->config_write(kCtl, 2, 0x0001);
    CHECK(a.dev->msi_enabled());
    CHECK(a.dev->msi_vectors() == 1);
    CHECK((control(a) & 0x71) == 0x01u);
    CHECK(a.fn().irqs.at(VFIO_PCI_MSI_IRQ_INDEX) == std::vector<int32_t>{1000});
    CHECK(intx_off(a));
    REQUIRE(a.msi.routes.size() == 1);
    CHECK(a.msi.routes[0].message.address == 0xfee00000u);
    CHECK(a.msi.routes[0].message.data == 0x4021u);
    CHECK_FALSE(a.msi.routes[0].masked);
    CHECK(device_msi_untouched(a, at_open));  // the enable bit is ours alone

    a.dev->config_write(kCtl, 2, 0x0000);
    CHECK_FALSE(a.dev->msi_enabled());
    CHECK(a.dev->msi_vectors() == 0);
    CHECK((control(a) & 1) == 0);
    CHECK(a.fn().irqs.count(VFIO_PCI_MSI_IRQ_INDEX) == 0);
    CHECK(a.msi.routes[0].masked);
    CHECK(intx_on(a));
    CHECK(device_msi_untouched(a, at_open));
}

TEST_CASE("MSI with four vectors: data carries the vector, masks and messages re-route", "[vfio][pci][msi]") {
    Assigned a;
    const std::vector<uint8_t> at_open = a.fn().config;
    program(a, 0x1fee00000ull, 0x4043);  // the low two bits are the function's to replace
    a.dev->config_write(sim::kMsiMask, 4, 0b0100);

    a.dev->config_write(kCtl, 2, 0x0021);  // MME = 2: 4 vectors
    REQUIRE(a.dev->msi_vectors() == 4);
    CHECK((control(a) & 0x71) == 0x21u);
    CHECK(a.fn().irqs.at(VFIO_PCI_MSI_IRQ_INDEX) == std::vector<int32_t>{1000, 1001, 1002, 1003});
    CHECK(intx_off(a));
    REQUIRE(a.msi.routes.size() == 4);
    for (uint32_t v = 0; v < 4; ++v) {
        INFO("vector " << v);
        CHECK(a.msi.routes[v].message.address == 0x1fee00000ull);
        CHECK(a.msi.routes[v].message.data == (0x4040u | v));
        CHECK(a.msi.routes[v].masked == (v == 2));
    }

    // A byte write to the mask register moves the mask at once.
    a.dev->config_write(sim::kMsiMask, 1, 0b0010);
    CHECK(a.msi.routes[1].masked);
    CHECK_FALSE(a.msi.routes[2].masked);
    CHECK_FALSE(a.msi.routes[0].masked);

    // New address and data while enabled are routed at once.
    a.dev->config_write(sim::kMsiData, 2, 0x4150);
    a.dev->config_write(sim::kMsiAddressLo, 4, 0xfee02000);
    a.dev->config_write(sim::kMsiAddressHi, 4, 0);
    for (uint32_t v = 0; v < 4; ++v) {
        INFO("vector " << v);
        CHECK(a.msi.routes[v].message.address == 0xfee02000u);
        CHECK(a.msi.routes[v].message.data == (0x4150u | v));
        CHECK(a.msi.routes[v].masked == (v == 1));
    }

    // MME is latched while enabled.
    a.dev->config_write(kCtl, 2, 0x0001);
    CHECK(a.dev->msi_vectors() == 4);
    CHECK((control(a) & 0x71) == 0x21u);
    CHECK(a.fn().irqs.at(VFIO_PCI_MSI_IRQ_INDEX).size() == 4);

    a.dev->config_write(kCtl, 1, 0x00);  // byte write: off
    CHECK_FALSE(a.dev->msi_enabled());
    CHECK(a.fn().irqs.count(VFIO_PCI_MSI_IRQ_INDEX) == 0);
    for (uint32_t v = 0; v < 4; ++v) CHECK(a.msi.routes[v].masked);
    CHECK(intx_on(a));
    CHECK(device_msi_untouched(a, at_open));

    // Again with two vectors: the kernel's MSI index is set up afresh.
    a.dev->config_write(kCtl, 2, 0x0011);
    CHECK(a.dev->msi_vectors() == 2);
    CHECK(a.fn().irqs.at(VFIO_PCI_MSI_IRQ_INDEX) == std::vector<int32_t>{1000, 1001});
    CHECK(a.msi.routes[1].message.data == 0x4151u);
}

TEST_CASE("MSI and MSI-X exclude each other", "[vfio][pci][msi]") {
    Assigned a;
    const uint16_t msix_ctl = sim::kMsixCap + 2;
    program(a, 0xfee00000, 0x4021);
    a.dev->config_write(kCtl, 2, 0x0001);
    REQUIRE(a.dev->msi_enabled());

    int calls = a.msi.route_calls;
    a.dev->config_write(msix_ctl, 2, 0x8000);  // refused: MSI is on
    CHECK(a.msi.route_calls == calls);  // MSI's routes untouched
    CHECK_FALSE(a.dev->msix_enabled());
    CHECK((a.dev->config_read(msix_ctl, 2) & 0x8000) == 0);
    CHECK(a.fn().irqs.count(VFIO_PCI_MSIX_IRQ_INDEX) == 0);
    CHECK(a.dev->msi_enabled());
    CHECK(a.fn().irqs.at(VFIO_PCI_MSI_IRQ_INDEX) == std::vector<int32_t>{1000});
    CHECK_FALSE(a.msi.routes[0].masked);

    a.dev->config_write(kCtl, 2, 0x0000);
    a.table_write(0, 12, 0);
    a.dev->config_write(msix_ctl, 2, 0x8000);
    REQUIRE(a.dev->msix_enabled());
    CHECK(intx_off(a));

    CHECK_FALSE(a.msi.routes[0].masked);
    calls = a.msi.route_calls;
    a.dev->config_write(kCtl, 2, 0x0001);  // refused: MSI-X is on
    CHECK(a.msi.route_calls == calls);  // MSI-X's routes untouched
    CHECK_FALSE(a.msi.routes[0].masked);
    CHECK_FALSE(a.dev->msi_enabled());
    CHECK((control(a) & 1) == 0);
    CHECK(a.fn().irqs.count(VFIO_PCI_MSI_IRQ_INDEX) == 0);
    CHECK(a.dev->msix_enabled());
    CHECK(a.fn().irqs.at(VFIO_PCI_MSIX_IRQ_INDEX).size() == sim::kMsixVectors);
    CHECK(intx_off(a));

    a.dev->config_write(msix_ctl, 2, 0x0000);
    CHECK(intx_on(a));
    a.dev->config_write(kCtl, 2, 0x0001);  // and now it may
    CHECK(a.dev->msi_enabled());
    CHECK(intx_off(a));
}

TEST_CASE("a refused MSI enable leaves INTx running and the vectors masked", "[vfio][pci][msi]") {
    Assigned a;
    program(a, 0xfee00000, 0x4020);
    SECTION("the host has no vectors left") {
        a.fn().msi_enable_errno = ENOSPC;
        a.dev->config_write(kCtl, 2, 0x0011);
        a.fn().msi_enable_errno = 0;
    }
    SECTION("the VM has no GSI for a vector") {
        a.msi.fail_eventfds = true;
        a.dev->config_write(kCtl, 2, 0x0011);
        a.msi.fail_eventfds = false;
    }
    CHECK_FALSE(a.dev->msi_enabled());
    CHECK((control(a) & 0x71) == 0x10u);  // enable reads 0, MME as written
    CHECK(a.fn().irqs.count(VFIO_PCI_MSI_IRQ_INDEX) == 0);
    for (uint32_t v = 0; v < 2; ++v) CHECK(a.msi.routes.at(v).masked);
    CHECK(intx_on(a));

    a.dev->config_write(kCtl, 2, 0x0011);  // the guest's next try works
    CHECK(a.dev->msi_vectors() == 2);
    CHECK_FALSE(a.msi.routes.at(1).masked);
    CHECK(intx_off(a));
}

TEST_CASE("MSI with 32-bit addresses and no per-vector masks", "[vfio][pci][msi]") {
    Assigned a([](sim::SimFunction& f) { f.set_msi(false, false, 0); });
    const uint16_t data = sim::kMsiCap + 8;  // no upper address dword
    CHECK(control(a) == 0x0000u);
    a.dev->config_write(sim::kMsiAddressLo, 4, 0xfee03000);
    a.dev->config_write(data, 2, 0x4031);
    CHECK(a.dev->config_read(data, 4) == 0x4031u);
    a.dev->config_write(kCtl, 2, 0x0071);  // MME held at MMC = 0
    REQUIRE(a.dev->msi_vectors() == 1);
    CHECK((control(a) & 0x71) == 0x01u);
    CHECK(a.fn().irqs.at(VFIO_PCI_MSI_IRQ_INDEX) == std::vector<int32_t>{1000});
    CHECK(a.msi.routes.at(0).message.address == 0xfee03000u);
    CHECK(a.msi.routes.at(0).message.data == 0x4031u);
    CHECK_FALSE(a.msi.routes.at(0).masked);
    a.dev->config_write(data, 2, 0x4032);
    CHECK(a.msi.routes.at(0).message.data == 0x4032u);
}

TEST_CASE("without an MSI router MSI stays off and INTx keeps running", "[vfio][pci][msi]") {
    Host host;
    FixedIntxRouter intx;
    auto dev = VfioPciDevice::open(host.container(), kAddress, nullptr, &intx);
    REQUIRE(dev.has_value());
    (*dev)->config_write(kCtl, 2, 0x0001);
    CHECK_FALSE((*dev)->msi_enabled());
    CHECK(((*dev)->config_read(kCtl, 2) & 1) == 0);
    auto& f = host.sim->functions.at(kAddress);
    CHECK(f.irqs.count(VFIO_PCI_MSI_IRQ_INDEX) == 0);
    CHECK(f.irqs.at(VFIO_PCI_INTX_IRQ_INDEX).at(0) == 500);
}
