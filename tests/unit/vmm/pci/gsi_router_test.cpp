#include <catch2/catch.hpp>

#include <algorithm>

#include "vmm/pci/gsi_router.h"
#include "vmm/pci/pci_devices.h"

using namespace vmm;
using namespace vmm::pci;

namespace {

struct Committed {
    std::vector<std::vector<kvm_irq_routing_entry>> tables;
    bool fail = false;
    GsiRouter::Commit commit() {
        return [this](std::span<const kvm_irq_routing_entry> t) -> Result<void> {
            if (fail) return Error("KVM_SET_GSI_ROUTING: Invalid argument", EINVAL);
            tables.emplace_back(t.begin(), t.end());
            return ok();
        };
    }
};

size_t count_gsi(const std::vector<kvm_irq_routing_entry>& t, uint32_t gsi) {
    return static_cast<size_t>(std::count_if(t.begin(), t.end(), [&](const auto& e) { return e.gsi == gsi; }));
}

}  // namespace

TEST_CASE("GSI routing keeps KVM's default IOAPIC and PIC routes", "[pci][gsi]") {
    Committed c;
    GsiRouter router(c.commit(), 64);
    auto table = router.table();
    // 24 IOAPIC pins plus 16 PIC entries, as kvm_setup_default_irq_routing.
    REQUIRE(table.size() == 40);
    for (uint32_t gsi = 0; gsi < 24; ++gsi) CHECK(count_gsi(table, gsi) == (gsi < 16 ? 2u : 1u));
    auto pic = std::find_if(table.begin(), table.end(), [](const auto& e) {
        return e.gsi == 9 && e.u.irqchip.irqchip == KVM_IRQCHIP_PIC_SLAVE;
    });
    REQUIRE(pic != table.end());
    CHECK(pic->u.irqchip.pin == 1);
    CHECK(c.tables.empty());  // nothing committed before an MSI route exists
}

TEST_CASE("MSI routes are allocated from GSI 24, committed whole, and released", "[pci][gsi]") {
    Committed c;
    GsiRouter router(c.commit(), 64);
    uint32_t a = router.allocate().value();
    uint32_t b = router.allocate().value();
    CHECK(a == 24);
    CHECK(b == 25);
    REQUIRE(router.set_msi(b, 0xfee0'1000, 0x4041));
    REQUIRE(c.tables.size() == 1);
    const auto& t = c.tables.back();
    CHECK(t.size() == 41);
    auto e = std::find_if(t.begin(), t.end(), [&](const auto& x) { return x.gsi == b; });
    REQUIRE(e != t.end());
    CHECK(e->type == KVM_IRQ_ROUTING_MSI);
    CHECK(e->u.msi.address_lo == 0xfee0'1000);
    CHECK(e->u.msi.data == 0x4041);
    // The same message again costs no ioctl; a new one does.
    REQUIRE(router.set_msi(b, 0xfee0'1000, 0x4041));
    CHECK(c.tables.size() == 1);
    REQUIRE(router.set_msi(b, 0x1'fee0'2000, 0x4042));
    CHECK(c.tables.back().back().u.msi.address_hi == 1);
    REQUIRE(router.release(b));
    CHECK(c.tables.back().size() == 40);
    CHECK(router.msi_routes() == 0);
    CHECK(router.allocate().value() == 25);  // reused
    CHECK_FALSE(router.set_msi(40, 0xfee0'0000, 1));  // never allocated
    CHECK_FALSE(router.release(40));
    (void)a;
}

TEST_CASE("a refused table leaves the router as KVM has it", "[pci][gsi]") {
    Committed c;
    GsiRouter router(c.commit(), 64);
    uint32_t g = router.allocate().value();
    REQUIRE(router.set_msi(g, 0xfee0'0000, 0x30));
    c.fail = true;
    auto r = router.set_msi(g, 0xfee0'0000, 0x31);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message(), Catch::Contains("GSI 24"));
    CHECK(router.table().back().u.msi.data == 0x30);
}

TEST_CASE("GSIs run out with a clear error", "[pci][gsi]") {
    Committed c;
    GsiRouter router(c.commit(), 26);
    REQUIRE(router.allocate());
    REQUIRE(router.allocate());
    auto none = router.allocate();
    REQUIRE_FALSE(none);
    CHECK(none.error().errno_value() == ENOSPC);
}

TEST_CASE("a --device path names one PCI function", "[pci][vfio]") {
    CHECK(pci_address_from_path("/sys/bus/pci/devices/0000:01:00.0/").value() == "0000:01:00.0");
    CHECK(pci_address_from_path("/sys/bus/pci/devices/0000:AF:1f.7").value() == "0000:af:1f.7");
    CHECK(pci_address_from_path("0000:02:00.1").value() == "0000:02:00.1");
    for (const char* bad : {"", "/", "/sys/bus/pci/devices/", "0000:01:00", "0000:01:00.8", "0000:01:20.0",
                            "000:001:00.0", "0000-01-00.0", "/dev/vfio/7", "0000:0g:00.0", "../0000:01:00.0x"}) {
        INFO(bad);
        auto r = pci_address_from_path(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().errno_value() == EINVAL);
    }
}
