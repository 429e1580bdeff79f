// The DMA invariant with the real HyperAlloc device driving a VfioContainer over the
// simulated type1 IOMMU: after every host operation the IOMMU maps exactly all of
// guest RAM minus the reclaimed 2 MiB frames, each merged range left in one unmap.
#include "../../balloon/hyperalloc/hyperalloc_test_support.h"
#include "sim_vfio.h"
#include "vmm/vfio/vfio_container.h"

using namespace vmm::balloon::hyperalloc;
using namespace vmm::balloon::hyperalloc::test;
using vmm::vfio::VfioContainer;

namespace {

struct VfioDmaSetup {
    VfioDmaSetup() : h(options()) {
        zone = &add_default_zone(h, {12 * 512});
        sim->add_function("0000:01:00.0", 3);
        auto c = VfioContainer::open(sim, h.mem);
        REQUIRE(c.has_value());
        container = *c;
        REQUIRE(container->attach_group(3).has_value());
        REQUIRE(container->map_all_ram().has_value());  // before the guest's zones are known
        h.dev->set_dma_mapper(container);
        REQUIRE(h.activate().has_value());
        h.post_zones();
    }
    static HyperAllocOptions options() {
        HyperAllocOptions o;
        o.auto_mode = true;
        return o;
    }
    // Mapped bytes of [gpa, gpa + len) in the simulated IOMMU.
    uint64_t mapped(uint64_t gpa, uint64_t len) const {
        uint64_t n = 0;
        for (auto& [iova, m] : sim->containers.at(container->fd()).mappings)
            if (iova >= gpa && iova + m.size <= gpa + len) n += m.size;
        return n;
    }
    // All RAM outside the zone stays mapped; inside, a frame is mapped iff the guest's
    // LLFree does not mark it reclaimed.
    void check_invariant() const {
        uint64_t zone_start = Harness::child_gpa(*zone, 0);
        uint64_t zone_end = Harness::child_gpa(*zone, zone->children());
        CHECK(mapped(0, zone_start) == zone_start);
        CHECK(mapped(zone_end, h.mem.total_size() - zone_end) == h.mem.total_size() - zone_end);
        uint64_t reclaimed = 0;
        for (uint64_t c = 0; c < zone->children(); ++c) {
            bool is_reclaimed = llf_child_reclaimed(h.child_entry(*zone, c));
            reclaimed += is_reclaimed;
            INFO("child " << c);
            CHECK(mapped(Harness::child_gpa(*zone, c), kFrame) == (is_reclaimed ? 0 : kFrame));
        }
        CHECK(container->stats().mapped_bytes == h.mem.total_size() - reclaimed * kFrame);
        CHECK(sim->locked_bytes == h.mem.total_size() - reclaimed * kFrame);
    }
    Harness h;
    GuestZone* zone = nullptr;
    std::shared_ptr<vmm::vfio::sim::SimVfio> sim = std::make_shared<vmm::vfio::sim::SimVfio>();
    std::shared_ptr<VfioContainer> container;
};

}  // namespace

TEST_CASE("VFIO: RAM stays mapped until reclaim, reclaimed frames leave the IOMMU", "[vfio][hyperalloc][dma]") {
    VfioDmaSetup s;
    s.check_invariant();
    CHECK(s.h.counter("discard_calls") == 0);
    REQUIRE(s.h.dev->set_target(20 * kMiB).has_value());
    s.h.dev->run_auto_pass_for_test();
    s.check_invariant();
    CHECK(s.mapped(Harness::child_gpa(*s.zone, 0), 60 * kMiB) == kFrame);  // the guest's used frame
    // One unmap ioctl per merged range (each range also got exactly one discard).
    CHECK(s.container->stats().unmap_calls == s.h.counter("discard_calls"));
}

TEST_CASE("VFIO: installs map frames back, interleaved with more reclaim", "[vfio][hyperalloc][dma]") {
    VfioDmaSetup s;
    s.h.dev->run_auto_pass_for_test();
    s.check_invariant();
    uint64_t maps_before = s.container->stats().map_calls;
    int installs = 0;
    for (int round = 0; round < 4; ++round) {
        for (int i = 0; i < 3; ++i) {
            llf_result r{};
            if (llf_get(&s.zone->l, 0, 9, &r) != LLF_OK) break;
            if (r.reclaimed_mask) {
                CHECK(s.h.install(r.frame) == HA_INSTALL_OK);
                ++installs;
                s.check_invariant();
            }
            // The guest frees it again later, so the next pass can reclaim it.
            REQUIRE(llf_put(&s.zone->l, 0, r.frame, 9) == LLF_OK);
        }
        s.h.dev->run_auto_pass_for_test();
        s.check_invariant();
    }
    REQUIRE(installs > 0);
    // Each install is one 2 MiB map through the IOMMU.
    CHECK(s.container->stats().map_calls - maps_before == static_cast<uint64_t>(installs));
}

TEST_CASE("VFIO: a locked-memory limit fails the install and keeps the frame reclaimed", "[vfio][hyperalloc][dma]") {
    VfioDmaSetup s;
    s.h.dev->run_auto_pass_for_test();
    llf_result r{};
    REQUIRE(llf_get(&s.zone->l, 0, 9, &r) == LLF_OK);
    REQUIRE(r.reclaimed_mask == 1);
    s.sim->locked_limit = s.sim->locked_bytes;  // RLIMIT_MEMLOCK reached
    CHECK(s.h.install(r.frame) == HA_INSTALL_ERR_BACKING);
    s.check_invariant();
    s.sim->locked_limit = ~0ull;
    CHECK(s.h.install(r.frame) == HA_INSTALL_OK);
    s.check_invariant();
}

TEST_CASE("VFIO: device reset maps all of RAM again", "[vfio][hyperalloc][dma]") {
    VfioDmaSetup s;
    REQUIRE(s.h.dev->set_target(20 * kMiB).has_value());
    s.h.dev->run_auto_pass_for_test();
    REQUIRE(s.container->stats().mapped_bytes < s.h.mem.total_size());
    s.h.dev->reset();
    CHECK(s.container->stats().mapped_bytes == s.h.mem.total_size());
    CHECK(s.mapped(0, s.h.mem.total_size()) == s.h.mem.total_size());
}
