// VfioContainer over the simulated kernel: granular DMA mapping of guest RAM and
// clear errors when the group cannot be used.
#include "vfio_test_support.h"

#include <catch2/catch.hpp>

using namespace vmm;
using namespace vmm::vfio;
using namespace vmm::vfio::test;

TEST_CASE("all of RAM is mapped in 2 MiB pieces at the guest-physical address", "[vfio][container]") {
    Host host(64 * kMiB, 6 * kMiB + 4096 * 2);
    auto c = host.container();
    REQUIRE(c->attach_group(7).has_value());
    REQUIRE(c->map_all_ram().has_value());
    const sim::SimContainer& k = host.sim->containers.at(c->fd());
    CHECK(k.mappings.size() == 32 + 4);  // the high region ends in an 8 KiB piece
    CHECK(host.sim->mapped_bytes(c->fd()) == host.mem.total_size());
    CHECK(c->stats().mapped_bytes == host.mem.total_size());
    CHECK(c->stats().map_calls == 36);
    // IOVA = GPA, vaddr = the host mapping of that GPA.
    const auto& high = host.mem.regions()[1];
    auto it = k.mappings.find(high.start().raw + 2 * kMiB);
    REQUIRE(it != k.mappings.end());
    CHECK(it->second.vaddr == high.host_address_for_kvm() + 2 * kMiB);
    for (auto& [iova, m] : k.mappings) CHECK(iova / (2 * kMiB) == (iova + m.size - 1) / (2 * kMiB));
}

TEST_CASE("a merged range is one unmap, and frames map back", "[vfio][container]") {
    Host host;
    auto c = host.container();
    REQUIRE(c->attach_group(7).has_value());
    REQUIRE(c->map_all_ram().has_value());
    auto before = c->stats();
    REQUIRE(c->unmap(memory::GuestAddress(8 * kMiB), 6 * kMiB).has_value());
    CHECK(c->stats().unmap_calls == before.unmap_calls + 1);
    CHECK(c->stats().mapped_bytes == before.mapped_bytes - 6 * kMiB);
    REQUIRE(c->map(memory::GuestAddress(10 * kMiB), 2 * kMiB).has_value());
    CHECK(host.sim->mapped_bytes(c->fd()) == 60 * kMiB);
    // Part of a 2 MiB mapping cannot go (type1 v2), and the error says where.
    auto split = c->unmap(memory::GuestAddress(20 * kMiB), 1 * kMiB);
    REQUIRE_FALSE(split.has_value());
    CHECK(split.error().errno_value() == EINVAL);
    CHECK(split.error().message().find("[0x1400000, +0x100000)") != std::string::npos);
    // Unmapping what is not mapped is reported, not silently accepted.
    auto twice = c->unmap(memory::GuestAddress(8 * kMiB), 2 * kMiB);
    REQUIRE_FALSE(twice.has_value());
    CHECK(twice.error().message().find("only 0x0 bytes") != std::string::npos);
    // Mapping twice: the kernel's EEXIST comes through.
    auto again = c->map(memory::GuestAddress(0), 2 * kMiB);
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().errno_value() == EEXIST);
}

TEST_CASE("ranges outside RAM or unaligned are refused before the kernel", "[vfio][container]") {
    Host host;
    auto c = host.container();
    REQUIRE(c->attach_group(7).has_value());
    CHECK_FALSE(c->map(memory::GuestAddress(60 * kMiB), 8 * kMiB).has_value());
    CHECK_FALSE(c->map(memory::GuestAddress(0x800), 4096).has_value());
    CHECK_FALSE(c->unmap(memory::GuestAddress(0), 0).has_value());
    CHECK(c->stats().map_calls == 0);
}

TEST_CASE("a map that fails half-way leaves nothing mapped", "[vfio][container]") {
    Host host;
    host.sim->locked_limit = 5 * kMiB;  // RLIMIT_MEMLOCK too small for the range
    auto c = host.container();
    REQUIRE(c->attach_group(7).has_value());
    auto r = c->map(memory::GuestAddress(0), 8 * kMiB);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().errno_value() == ENOMEM);
    CHECK(host.sim->mapped_bytes(c->fd()) == 0);
    CHECK(host.sim->locked_bytes == 0);
    CHECK(c->stats().mapped_bytes == 0);
}

TEST_CASE("group errors are explained", "[vfio][container]") {
    Host host;
    host.sim->groups[8].viable = false;
    host.sim->groups[9].busy = true;
    auto c = host.container();
    auto missing = c->attach_group(42);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().message() == "VFIO group 42 does not exist (is the device bound to vfio-pci?)");
    auto unviable = c->attach_group(8);
    REQUIRE_FALSE(unviable.has_value());
    CHECK(unviable.error().message().find("VFIO group 8 is not viable") == 0);
    auto busy = c->attach_group(9);
    REQUIRE_FALSE(busy.has_value());
    CHECK(busy.error().message() == "VFIO group 9 is in use by another process");
    // The same group attached twice is one attachment.
    auto first = c->attach_group(7);
    REQUIRE(first.has_value());
    CHECK(*c->attach_group(7) == *first);
    // A group already bound to another container (e.g. of another VM in this process).
    host.sim->groups[10];
    auto other = host.container();
    REQUIRE(other->attach_group(10).has_value());
    host.sim->groups[10].open = false;  // as if opened again through another path
    auto taken = c->attach_group(10);
    REQUIRE_FALSE(taken.has_value());
    CHECK(taken.error().message() == "VFIO group 10 is already assigned (attached to another container)");
}

TEST_CASE("dropping the container releases its groups and pinned memory", "[vfio][container]") {
    Host host;
    {
        auto c = host.container();
        REQUIRE(c->attach_group(7).has_value());
        REQUIRE(c->map_all_ram().has_value());
        CHECK(host.sim->locked_bytes == 64 * kMiB);
    }
    CHECK(host.sim->locked_bytes == 0);
    CHECK(host.sim->groups[7].container == -1);
    CHECK_FALSE(host.sim->groups[7].open);
}
