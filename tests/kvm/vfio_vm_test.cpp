// A VFIO function (the kernel's VFIO simulated: tests/support/vfio_sim) on the
// guest's PCI bus, driven by the test guest's pci mode at native speed: the
// bridge and the function through ECAM, BAR sizing and relocation, a BAR that is
// a KVM memory slot, the trapped MSI-X table, KVM GSI routes with irqfds (a
// signal KVM consumes is an injected interrupt; a masked vector keeps its signal
// pending until unmasked), DMA mapping of guest RAM, hot-add and removal.
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstring>

#include "guest_run.h"
#include "memory/x86_64_layout.h"
#include "sim_vfio.h"
#include "vmm/request_channel.h"

using namespace vmm;
using namespace vmm::test;
namespace sim = vmm::vfio::sim;

namespace {

constexpr char kAddress[] = "0000:01:00.0";
constexpr uint64_t kMailbox = 0x1f1000;
constexpr auto kStageLimit = 60s;

void release_stage(GuestRun& run, uint32_t stage) {
    REQUIRE(run.vm().memory().write(memory::GuestAddress(kMailbox), std::as_bytes(std::span(&stage, 1))));
}

bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

void signal(int fd) {
    uint64_t one = 1;
    REQUIRE(::write(fd, &one, sizeof one) == static_cast<ssize_t>(sizeof one));
}

uint64_t mapped_bytes(const sim::SimVfio& host) {
    uint64_t n = 0;
    for (const auto& [fd, c] : host.containers) n += host.mapped_bytes(fd);
    return n;
}

}  // namespace

TEST_CASE("a VFIO function on the guest's PCI bus: BARs, MSI-X through KVM routes, DMA", "[kvm][vfio]") {
    auto host = std::make_shared<sim::SimVfio>();
    host->add_function(kAddress, 7);
    GuestRun run(
        "pci", 1, 256,
        [](VmConfig& c) {
            c.devices.push_back({"/sys/bus/pci/devices/0000:01:00.0/", ""});
            c.balloon = BalloonConfig{};  // HyperAlloc: the guest has no driver, so no zones
        },
        VmServices{host});
    // Before the guest runs, all of its RAM is mapped for DMA.
    CHECK(mapped_bytes(*host) == 256ull << 20);
    sim::SimFunction& fn = host->functions.at(kAddress);
    CHECK(fn.opened);
    CHECK(fn.resets >= 1);
    // INTx (the function has pin A): a trigger irqfd and a resamplefd from KVM.
    REQUIRE(fn.irqs.count(VFIO_PCI_INTX_IRQ_INDEX));
    REQUIRE(fn.irqs.at(VFIO_PCI_INTX_IRQ_INDEX).size() == 1);
    CHECK(fn.irqs.at(VFIO_PCI_INTX_IRQ_INDEX)[0] >= 0);
    REQUIRE(fn.irqs.count(VFIO_PCI_INTX_IRQ_INDEX + 100));
    CHECK(fn.irqs.at(VFIO_PCI_INTX_IRQ_INDEX + 100)[0] >= 0);

    run.start();
    REQUIRE(run.wait_output("PCI: STAGE 1", kStageLimit));
    std::string out = run.output();
    INFO(out);
    CHECK_THAT(out, Catch::Contains("at 00:01.0"));
    CHECK_THAT(out, Catch::Contains("bar2 size 4000 restored d0000000"));
    CHECK_THAT(out, Catch::Contains("wrote c0ffee01 read c0ffee01"));
    CHECK_THAT(out, Catch::Contains("vectors 16 enabled 1 entry0 data 45"));
    // The guest's store went straight into the function's BAR0 (a memory slot).
    uint32_t stored = 0;
    std::memcpy(&stored, fn.bar0.data() + 0x100, sizeof stored);
    CHECK(stored == 0xc0ffee01u);
    // vfio-pci runs one interrupt type: INTx is off while MSI-X is on.
    CHECK(fn.irqs[VFIO_PCI_INTX_IRQ_INDEX].empty());
    // MSI-X is on in the (simulated) kernel with one eventfd per vector.
    REQUIRE(fn.irqs.count(VFIO_PCI_MSIX_IRQ_INDEX));
    const auto& fds = fn.irqs.at(VFIO_PCI_MSIX_IRQ_INDEX);
    REQUIRE(fds.size() == sim::kMsixVectors);
    // Vector 0 is unmasked: KVM's irqfd takes the signal at once and injects the MSI.
    signal(fds[0]);
    CHECK_FALSE(readable(fds[0]));
    // Vector 1 is masked: no irqfd, the signal stays pending.
    signal(fds[1]);
    CHECK(readable(fds[1]));

    release_stage(run, 1);
    REQUIRE(run.wait_output("PCI: STAGE 2", kStageLimit));
    // In the guest's LAPIC: vector 0's MSI (0x45) arrived, vector 1's (0x46) only once
    // the guest unmasked it (assigning the irqfd injects a pending signal).
    CHECK_THAT(run.output(), Catch::Contains("PCI: irr 45=1 46=0, after unmask 46=1"));

    release_stage(run, 2);
    REQUIRE(run.wait_output("PCI: STAGE 3", kStageLimit));
    CHECK_THAT(run.output(), Catch::Contains("msix enabled 0 after disable"));
    CHECK(fn.irqs[VFIO_PCI_MSIX_IRQ_INDEX].empty());
    CHECK(fn.irqs[VFIO_PCI_INTX_IRQ_INDEX].size() == 1);  // INTx is back

    release_stage(run, 3);
    auto end = run.wait_exit(60s);
    REQUIRE(end.has_value());
    CHECK(run.output().find("TESTGUEST: PASS pci") != std::string::npos);
}

TEST_CASE("VFIO hot-add and removal through the VMM thread's requests", "[kvm][vfio]") {
    auto host = std::make_shared<sim::SimVfio>();
    host->add_function(kAddress, 7);
    host->add_function("0000:02:00.0", 8);
    GuestRun run("counter", 1, 128, [](VmConfig& c) { c.balloon = BalloonConfig{}; }, VmServices{host});
    auto channel = RequestChannel::create();
    REQUIRE(channel);
    run.vm().attach_requests(*channel);
    run.start();
    REQUIRE(run.wait_counter_above(0, 30s));
    CHECK(mapped_bytes(*host) == 0);  // no container without a device

    auto added = (*channel)->call(request::AddDevice{{std::string("/sys/bus/pci/devices/") + kAddress + "/", ""}});
    REQUIRE(added);
    const auto* info = std::get_if<AssignedDevice>(&*added);
    REQUIRE(info);
    CHECK(info->id == "vfio0");
    CHECK(info->bdf == "0000:00:01.0");
    CHECK(mapped_bytes(*host) == 128ull << 20);

    // The same function again, a wrong path, a busy function: clear refusals.
    auto again = (*channel)->call(request::AddDevice{{kAddress, ""}});
    REQUIRE(again);
    REQUIRE(std::get_if<RequestError>(&*again));
    CHECK(std::get<RequestError>(*again).kind == RequestError::Kind::wrong_state);
    CHECK_THAT(std::get<RequestError>(*again).message, Catch::Contains("already assigned"));
    auto wrong = (*channel)->call(request::AddDevice{{"/sys/bus/pci/devices/0000:09:00.0/", ""}});
    REQUIRE(std::get_if<RequestError>(&*wrong));
    CHECK(std::get<RequestError>(*wrong).kind == RequestError::Kind::bad_request);
    host->functions.at("0000:02:00.0").busy = true;
    auto busy = (*channel)->call(request::AddDevice{{"0000:02:00.0", "nic"}});
    REQUIRE(std::get_if<RequestError>(&*busy));
    CHECK_THAT(std::get<RequestError>(*busy).message, Catch::Contains("busy"));
    host->functions.at("0000:02:00.0").busy = false;
    auto second = (*channel)->call(request::AddDevice{{"0000:02:00.0", "nic"}});
    REQUIRE(std::get_if<AssignedDevice>(&*second));
    CHECK(std::get<AssignedDevice>(*second).bdf == "0000:00:02.0");

    auto vm_info = (*channel)->call(request::GetInfo{});
    REQUIRE(std::get_if<VmInfo>(&*vm_info));
    CHECK(std::get<VmInfo>(*vm_info).devices.size() == 2);
    CHECK(std::get<VmInfo>(*vm_info).config.devices.size() == 2);

    auto removed = (*channel)->call(request::RemoveDevice{"vfio0"});
    REQUIRE(std::get_if<Empty>(&*removed));
    CHECK_FALSE(host->functions.at(kAddress).opened);
    CHECK(mapped_bytes(*host) == 128ull << 20);  // the other function still needs RAM mapped
    auto unknown = (*channel)->call(request::RemoveDevice{"vfio0"});
    REQUIRE(std::get_if<RequestError>(&*unknown));
    CHECK(std::get<RequestError>(*unknown).kind == RequestError::Kind::not_found);
    REQUIRE(std::get_if<Empty>(&*(*channel)->call(request::RemoveDevice{"nic"})));
    CHECK(host->containers.empty());  // the last function took the container with it
    // The guest kept running throughout.
    uint64_t before = run.counter();
    CHECK(run.wait_counter_above(before, 10s));
}

TEST_CASE("the virtio-balloon with a VFIO device needs allow_vfio", "[kvm][vfio]") {
    auto host = std::make_shared<sim::SimVfio>();
    host->add_function(kAddress, 7);
    VmConfig config;
    config.memory.size = 128ull << 20;
    config.payload.kernel = TEST_GUEST_ELF;
    config.serial.mode = ConsoleMode::null;
    config.balloon = BalloonConfig{};
    config.balloon->model = BalloonModel::virtio;
    config.balloon->size = 16ull << 20;
    config.devices.push_back({kAddress, ""});
    auto refused = Vm::create(config, VmServices{host});
    REQUIRE_FALSE(refused);
    CHECK_THAT(refused.error().message(), Catch::Contains("allow_vfio=on"));
    CHECK(host->containers.empty());
    config.balloon->allow_vfio = true;
    auto vm = Vm::create(config, VmServices{host});
    REQUIRE(vm);
    CHECK(mapped_bytes(*host) == 128ull << 20);
}
