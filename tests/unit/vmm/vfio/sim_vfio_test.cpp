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
        int group = *sim.open_group(7);
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
};

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
