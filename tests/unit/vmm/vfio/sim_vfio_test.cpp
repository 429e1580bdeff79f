// The simulation itself must follow the kernel's type1 v2 rules, or the container
// tests above it would prove nothing.
#include "sim_vfio.h"

#include <catch2/catch.hpp>

using namespace vmm::vfio;
using namespace vmm::vfio::sim;

namespace {

struct Type1 {
    Type1() {
        sim.add_function("0000:01:00.0", 7);
        container = *sim.open_container();
        group = *sim.open_group(7);
        REQUIRE(sim.group_set_container(group, container).has_value());
        REQUIRE(sim.set_iommu(container, VFIO_TYPE1v2_IOMMU).has_value());
    }
    int err_map(uint64_t iova, uint64_t size) {
        auto r = sim.dma_map(container, iova, 0x7f0000000000 + iova, size);
        return r ? 0 : r.error().errno_value();
    }
    int err_unmap(uint64_t iova, uint64_t size) {
        auto r = sim.dma_unmap(container, iova, size);
        return r ? 0 : r.error().errno_value();
    }
    SimVfio sim;
    int container = -1;
    int group = -1;
};

int err(const vmm::Result<void>& r) { return r ? 0 : r.error().errno_value(); }

}  // namespace

TEST_CASE("type1 map: alignment, size and overlap", "[vfio][sim]") {
    Type1 t;
    CHECK(t.err_map(0x1000, 0) == EINVAL);
    CHECK(t.err_map(0x1800, 0x1000) == EINVAL);
    CHECK(t.err_map(0x1000, 0x1800) == EINVAL);
    CHECK(t.err_map(~0xfffull, 0x2000) == EINVAL);  // wraps
    CHECK(t.err_map(0x10000, 0x4000) == 0);
    CHECK(t.err_map(0x10000, 0x1000) == EEXIST);
    CHECK(t.err_map(0xf000, 0x2000) == EEXIST);
    CHECK(t.err_map(0x13000, 0x1000) == EEXIST);
    CHECK(t.err_map(0x14000, 0x1000) == 0);  // adjacent is fine
    CHECK(t.err_map(0xf000, 0x1000) == 0);
    CHECK(t.sim.mapped_bytes(t.container) == 0x6000);
}

TEST_CASE("type1 v2 unmap: no splitting, whole mappings inside go", "[vfio][sim]") {
    Type1 t;
    REQUIRE(t.err_map(0x200000, 0x200000) == 0);
    REQUIRE(t.err_map(0x400000, 0x200000) == 0);
    CHECK(t.err_unmap(0x200000, 0) == EINVAL);
    CHECK(t.err_unmap(0x201000, 0x1000) == EINVAL);    // starts inside
    CHECK(t.err_unmap(0x200000, 0x100000) == EINVAL);  // ends inside
    CHECK(t.err_unmap(0x200800, 0x1000) == EINVAL);    // unaligned
    auto none = t.sim.dma_unmap(t.container, 0x800000, 0x200000);
    REQUIRE(none.has_value());
    CHECK(*none == 0);
    auto both = t.sim.dma_unmap(t.container, 0x200000, 0x400000);
    REQUIRE(both.has_value());
    CHECK(*both == 0x400000);
    CHECK(t.sim.locked_bytes == 0);
}

TEST_CASE("type1 limits: entries and locked memory", "[vfio][sim]") {
    Type1 t;
    t.sim.dma_entry_limit = 2;
    CHECK(t.err_map(0x0, 0x1000) == 0);
    CHECK(t.err_map(0x2000, 0x1000) == 0);
    CHECK(t.err_map(0x4000, 0x1000) == ENOSPC);
    t.sim.dma_entry_limit = 65535;
    t.sim.locked_limit = 0x3000;
    CHECK(t.err_map(0x4000, 0x2000) == ENOMEM);
    CHECK(t.err_map(0x4000, 0x1000) == 0);
    CHECK(t.sim.locked_bytes == 0x3000);
}

TEST_CASE("type1 needs a group and an IOMMU first", "[vfio][sim]") {
    SimVfio sim;
    int c = *sim.open_container();
    CHECK(sim.set_iommu(c, VFIO_TYPE1v2_IOMMU).error().errno_value() == EINVAL);
    CHECK(sim.dma_map(c, 0, 0, 0x1000).error().errno_value() == EINVAL);
}

TEST_CASE("vfio-pci interrupts: counts from the capabilities, one type at a time", "[vfio][sim]") {
    Type1 t;
    int dev = *t.sim.group_device(t.group, "0000:01:00.0");
    SimFunction& f = t.sim.functions.at("0000:01:00.0");
    CHECK(t.sim.irq_info(dev, VFIO_PCI_INTX_IRQ_INDEX)->count == 1);
    CHECK(t.sim.irq_info(dev, VFIO_PCI_MSI_IRQ_INDEX)->count == kMsiVectors);
    CHECK(t.sim.irq_info(dev, VFIO_PCI_MSIX_IRQ_INDEX)->count == kMsixVectors);
    CHECK(t.sim.irq_info(dev, VFIO_PCI_ERR_IRQ_INDEX)->count == 0);

    const uint32_t trigger = VFIO_IRQ_SET_ACTION_TRIGGER;
    CHECK(err(t.sim.set_irqs(dev, VFIO_PCI_MSI_IRQ_INDEX, trigger, 0, {})) == EINVAL);  // not on
    const int32_t fds[] = {11, 12, 13, 14, 15};
    CHECK(err(t.sim.set_irqs(dev, VFIO_PCI_MSI_IRQ_INDEX, trigger, 0, std::span(fds, 5))) == EINVAL);  // > count
    CHECK(err(t.sim.set_irqs(dev, VFIO_PCI_MSI_IRQ_INDEX, trigger, 0, std::span(fds, 2))) == 0);
    CHECK(f.irqs.at(VFIO_PCI_MSI_IRQ_INDEX) == std::vector<int32_t>{11, 12});
    // The vectors are allocated at enable: a later block may not go past them.
    CHECK(err(t.sim.set_irqs(dev, VFIO_PCI_MSI_IRQ_INDEX, trigger, 2, std::span(fds, 1))) == EINVAL);
    CHECK(err(t.sim.set_irqs(dev, VFIO_PCI_MSI_IRQ_INDEX, trigger, 1, std::span(fds + 2, 1))) == 0);
    CHECK(f.irqs.at(VFIO_PCI_MSI_IRQ_INDEX) == std::vector<int32_t>{11, 13});
    CHECK(err(t.sim.set_irqs(dev, VFIO_PCI_MSIX_IRQ_INDEX, trigger, 0, std::span(fds, 1))) == EINVAL);
    CHECK(err(t.sim.set_irqs(dev, VFIO_PCI_INTX_IRQ_INDEX, trigger, 0, std::span(fds, 1))) == EINVAL);
    CHECK(err(t.sim.set_irqs(dev, VFIO_PCI_MSI_IRQ_INDEX, trigger, 0, {})) == 0);
    CHECK(f.irqs.empty());

    f.msi_enable_errno = ENOSPC;
    CHECK(err(t.sim.set_irqs(dev, VFIO_PCI_MSI_IRQ_INDEX, trigger, 0, std::span(fds, 1))) == ENOSPC);
    CHECK(f.irqs.empty());
    f.set_msi(true, true, 3);
    CHECK(t.sim.irq_info(dev, VFIO_PCI_MSI_IRQ_INDEX)->count == 8);
    f.config[0x3d] = 0;  // no pin, no INTx
    CHECK(t.sim.irq_info(dev, VFIO_PCI_INTX_IRQ_INDEX)->count == 0);
}

TEST_CASE("vfio-pci regions: BAR2 mmap only when flagged, config writes recorded", "[vfio][sim]") {
    Type1 t;
    int dev = *t.sim.group_device(t.group, "0000:01:00.0");
    SimFunction& f = t.sim.functions.at("0000:01:00.0");
    auto bar2 = *t.sim.region_info(dev, VFIO_PCI_BAR2_REGION_INDEX);
    CHECK((bar2.flags & VFIO_REGION_INFO_FLAG_MMAP) == 0);
    CHECK_FALSE(t.sim.region_mmap(dev, bar2.offset, kBar2Size).has_value());
    f.bar2_mmap = true;
    bar2 = *t.sim.region_info(dev, VFIO_PCI_BAR2_REGION_INDEX);
    CHECK((bar2.flags & VFIO_REGION_INFO_FLAG_MMAP) != 0);
    auto host = t.sim.region_mmap(dev, bar2.offset, kBar2Size);
    REQUIRE(host.has_value());
    CHECK(*host == f.bar2.data());

    auto config = *t.sim.region_info(dev, VFIO_PCI_CONFIG_REGION_INDEX);
    const std::byte word[2] = {std::byte{0x01}, std::byte{0x00}};
    REQUIRE(t.sim.region_write(dev, config.offset + kMsiControl, word).has_value());
    CHECK(f.config_written == std::set<uint16_t>{kMsiControl, kMsiControl + 1});
    CHECK(f.config[kMsiControl] == 0x84);  // read-only here
}
