// Shared fixtures for the VFIO tests: guest memory, a simulated host with one
// assignable function, recording routers, and that function opened as a device.
#pragma once

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <vector>

#include "sim_vfio.h"
#include "vmm/vfio/vfio_container.h"
#include "vmm/vfio/vfio_pci_device.h"

namespace vmm::vfio::test {

inline constexpr uint64_t kMiB = 1ull << 20;
inline constexpr char kAddress[] = "0000:01:00.0";

inline memory::GuestMemory make_memory(uint64_t low = 64 * kMiB, uint64_t high = 0) {
    std::vector<memory::GuestRange> layout{{memory::GuestAddress(0), low}};
    if (high) layout.push_back({memory::GuestAddress(4096 * kMiB), high});
    auto mem = memory::GuestMemory::create(layout);
    if (!mem) throw std::runtime_error(mem.error().message());
    return std::move(mem).value();
}

struct RecordingMsiRouter final : MsiRouter {
    struct Route {
        MsiMessage message;
        bool masked = true;
    };
    std::map<uint32_t, Route> routes;
    int route_calls = 0;
    bool fail_eventfds = false;  // as when the VM runs out of GSIs
    Result<int> vector_eventfd(uint32_t vector) override {
        if (fail_eventfds) return Error("no GSI left for the vector", ENOSPC);
        return static_cast<int>(1000 + vector);
    }
    Result<void> set_route(uint32_t vector, const MsiMessage& message, bool masked) override {
        ++route_calls;
        routes[vector] = {message, masked};
        return ok();
    }
};

struct FixedIntxRouter final : IntxRouter {
    Result<int> trigger_eventfd() override { return 500; }
    Result<int> resample_eventfd() override { return 501; }
};

struct Host {
    explicit Host(uint64_t low = 64 * kMiB, uint64_t high = 0) : mem(make_memory(low, high)) {
        sim->add_function(kAddress, 7);
    }
    std::shared_ptr<VfioContainer> container() {
        auto c = VfioContainer::open(sim, mem);
        if (!c) throw std::runtime_error(c.error().message());
        return *c;
    }
    std::shared_ptr<sim::SimVfio> sim = std::make_shared<sim::SimVfio>();
    memory::GuestMemory mem;
};

// The simulated function opened with both routers; `setup` edits it before open.
struct Assigned {
    explicit Assigned(const std::function<void(sim::SimFunction&)>& setup = {}) : container(host.container()) {
        if (setup) setup(fn());
        auto d = VfioPciDevice::open(container, kAddress, &msi, &intx);
        if (!d) throw std::runtime_error(d.error().message());
        dev = *d;
    }
    sim::SimFunction& fn() { return host.sim->functions.at(kAddress); }
    void table_write(uint32_t vector, uint32_t field, uint32_t value) {
        std::byte b[4];
        std::memcpy(b, &value, 4);
        dev->bar_write(2, vector * 16 + field, b);
    }
    uint32_t bar_read32(uint8_t bar, uint64_t offset) {
        std::byte b[4];
        dev->bar_read(bar, offset, b);
        uint32_t v;
        std::memcpy(&v, b, 4);
        return v;
    }
    Host host;
    RecordingMsiRouter msi;
    FixedIntxRouter intx;
    std::shared_ptr<VfioContainer> container;
    std::shared_ptr<VfioPciDevice> dev;
};

}  // namespace vmm::vfio::test
