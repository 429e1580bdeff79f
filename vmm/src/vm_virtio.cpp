// Creates the virtio devices the configuration asks for, in slot order: disks,
// nets, rng, console, balloon (the test guest and docs rely on that order). The
// balloon slot holds either model (--balloon model=hyperalloc|virtio).
#include "balloon/hyperalloc/hyperalloc_device.h"
#include "balloon/virtio_balloon.h"
#include "common/log.h"
#include "devices/virtio/block/block_device.h"
#include "devices/virtio/console/console_device.h"
#include "devices/virtio/net/mac.h"
#include "devices/virtio/net/net_device.h"
#include "devices/virtio/rng/rng_device.h"
#include "vmm/auto_balloon.h"
#include "vmm/console_io.h"
#include "vmm/virtio_mmio_devices.h"
#include "vmm/vm.h"

namespace vmm {

namespace dv = devices::virtio;

namespace {

balloon::hyperalloc::HyperAllocOptions hyperalloc_options(const BalloonConfig& b, unsigned vcpus) {
    balloon::hyperalloc::HyperAllocOptions options;
    options.target_bytes = b.size;
    options.auto_mode = b.auto_mode;
    options.auto_period = std::chrono::milliseconds(b.auto_period_ms);
    options.auto_limit_bytes = b.auto_limit_bytes;
    options.shrink_pagecache = b.shrink_pagecache;
    options.vcpus = vcpus;  // one install queue per vCPU
    options.install_path =
        b.install_path == InstallPath::worker ? dv::NotifyPath::worker_thread : dv::NotifyPath::vcpu_thread;
    return options;
}

}  // namespace

Result<void> Vm::add_balloon(const BalloonConfig& b) {
    uint64_t ram = m_memory->total_size();
    std::unique_ptr<AutoBalloonPort> port;
    if (b.model == BalloonModel::hyperalloc) {
        auto device = VMM_TRY(balloon::hyperalloc::HyperAllocDevice::create(hyperalloc_options(b, m_config.cpus.boot), ram));
        m_hyperalloc = device;
        VMM_TRY(m_virtio->add(device, "balloon"));
        port = make_auto_balloon_port(device);
    } else {
        balloon::BalloonOptions options{b.size, b.deflate_on_oom, b.free_page_reporting, b.stats_polling_interval_s};
        auto device = VMM_TRY(balloon::VirtioBalloon::create(options, ram));
        m_balloon = device;
        VMM_TRY(m_virtio->add(device, "balloon"));
        port = make_auto_balloon_port(device);
    }
    if (b.auto_balloon) {
        m_auto_balloon = VMM_TRY(AutoBalloonController::create(*b.auto_balloon, std::move(port), ram, *m_loop));
    }
    return ok();
}

Result<void> Vm::setup_virtio_devices() {
    m_virtio = std::make_unique<VirtioMmioDevices>(m_vm_fd, *m_memory, m_mmio_bus, *m_loop, m_config.seccomp);

    for (size_t i = 0; i < m_config.disks.size(); ++i) {
        const DiskConfig& disk = m_config.disks[i];
        std::string id = disk.id.empty() ? fmt::format("disk{}", i) : disk.id;
        dv::BlockOptions options{disk.path, disk.readonly, disk.direct, id};
        auto device = VMM_TRY_CTX(dv::BlockDevice::create(options), fmt::format("--disk {}", disk.path));
        VMM_TRY(m_virtio->add(device, id));
    }
    for (size_t i = 0; i < m_config.nets.size(); ++i) {
        const NetConfig& net = m_config.nets[i];
        std::string id = net.id.empty() ? fmt::format("net{}", i) : net.id;
        dv::net::NetOptions options;
        options.tap = net.tap;
        options.ip = net.ip;
        options.mask = net.mask;
        options.mac = net.mac ? VMM_TRY_CTX(dv::net::parse_mac(*net.mac), "--net") : dv::net::random_mac();
        options.id = id;
        auto device = VMM_TRY_CTX(dv::net::NetDevice::create(options), fmt::format("--net tap={}", net.tap));
        log::info("{}: tap {}, guest MAC {}", id, net.tap, dv::net::format_mac(options.mac));
        VMM_TRY(m_virtio->add(device, id));
    }
    if (m_config.rng) {
        auto device = VMM_TRY_CTX(dv::RngDevice::create(m_config.rng->src), "--rng");
        VMM_TRY(m_virtio->add(device, "rng"));
    }
    if (m_config.console.mode != ConsoleMode::off) {
        ConsoleSink sink = VMM_TRY_CTX(make_console_sink(m_config.console), "--console");
        auto device = std::make_shared<dv::ConsoleDevice>(std::move(sink));
        m_virtio_console = device;
        VMM_TRY(m_virtio->add(device, "console"));
    }
    if (m_config.balloon) VMM_TRY_CTX(add_balloon(m_config.balloon.value()), "--balloon");
    return ok();
}

}  // namespace vmm
