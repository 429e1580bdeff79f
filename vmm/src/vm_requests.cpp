// The VMM thread's answers to API requests (see vmm/vm_requests.h).
#include <unistd.h>

#include <fstream>
#include <string>

#include "balloon/hyperalloc/hyperalloc_device.h"
#include "balloon/virtio_balloon.h"
#include "common/log.h"
#include "legacy_devices.h"
#include "vmm/auto_balloon.h"
#include "vmm/pci/pci_devices.h"
#include "vmm/version.h"
#include "vmm/virtio_mmio_devices.h"
#include "vmm/vm.h"

namespace vmm {
namespace {

RequestError error(RequestError::Kind kind, std::string message) { return RequestError{kind, std::move(message)}; }

template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

constexpr uint64_t kHyperAllocFrame = balloon::hyperalloc::kFrameBytes;

// The VMM process's resident set ("VmRSS:  1234 kB" in /proc/self/status), read at
// request time so that HyperAlloc's reclaim can be watched from the API.
std::optional<uint64_t> host_rss_bytes() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) != 0) continue;
        try {
            return std::stoull(line.substr(6)) * 1024;
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    return std::nullopt;
}

const char* zone_type_name(uint32_t type) {
    switch (type) {
        case HA_ZONE_DMA32: return "DMA32";
        case HA_ZONE_NORMAL: return "NORMAL";
        case HA_ZONE_MOVABLE: return "MOVABLE";
        default: return "UNKNOWN";  // the device validates records; kept for safety
    }
}

HyperAllocInfo hyperalloc_info(const balloon::hyperalloc::HyperAllocDevice& device) {
    balloon::hyperalloc::HyperAllocStats stats = device.stats();
    const auto& options = device.options();
    HyperAllocInfo h;
    h.target_bytes = stats.target_bytes;
    h.hard_reclaimed_bytes = stats.hard_reclaimed_bytes;
    h.soft_reclaimed_bytes = stats.soft_reclaimed_bytes;
    h.guest_free_bytes = stats.guest_free_bytes;
    h.page_cache_bytes = stats.page_cache_bytes;
    h.installs = stats.installs;
    h.install_requests = stats.install_requests;
    h.install_errors = stats.install_errors;
    h.installs_per_s = stats.installs_per_s;
    h.auto_mode = options.auto_mode;
    h.auto_period_ms = static_cast<uint32_t>(options.auto_period.count());
    h.auto_limit_bytes = stats.auto_limit_bytes;
    h.auto_paused = stats.auto_paused;
    h.auto_reclaimed_bytes = stats.auto_reclaimed_bytes;
    h.discard_calls = stats.discard_calls;
    h.bad_records = stats.bad_records;
    h.pagecache_shrink_pending = stats.pagecache_shrink_pending;
    for (const auto& zone : stats.zones) h.zones.push_back({zone_type_name(zone.zone_type), zone.start_pfn, zone.pages});
    h.host_rss_bytes = host_rss_bytes();
    return h;
}

}  // namespace

BalloonInfo Vm::balloon_info() const {
    BalloonInfo info;
    if (m_auto_balloon) info.auto_balloon = m_auto_balloon->info();
    if (m_hyperalloc) {
        info.kind = "hyperalloc";
        info.hyperalloc = hyperalloc_info(*m_hyperalloc);
        info.target_bytes = info.hyperalloc->target_bytes;
        info.actual_bytes = info.hyperalloc->hard_reclaimed_bytes;
        return info;
    }
    const auto* b = m_balloon.get();
    const BalloonConfig& cfg = *m_config.balloon;
    info.kind = "virtio-balloon";
    info.target_bytes = uint64_t{b->target_pages()} * 4096;
    info.actual_bytes = uint64_t{b->actual_pages()} * 4096;
    info.deflate_on_oom = cfg.deflate_on_oom;
    info.free_page_reporting = cfg.free_page_reporting;
    info.stats_polling_interval_s = cfg.stats_polling_interval_s;
    if (auto stats = b->stats()) {
        BalloonStatistics s;
        for (const auto& [name, value] : stats->present()) s.values.emplace(std::string(name), value);
        s.updated_at = stats->updated_at;
        info.statistics = std::move(s);
    }
    return info;
}

VmReply Vm::resize_balloon(uint64_t bytes) {
    using Kind = RequestError::Kind;
    if (!m_balloon && !m_hyperalloc) return error(Kind::not_found, "this VM has no balloon (--balloon)");
    uint64_t ram = m_memory->total_size();
    uint64_t unit = m_hyperalloc ? kHyperAllocFrame : 4096;
    if (bytes % unit != 0) {
        return error(Kind::bad_request,
                     m_hyperalloc ? fmt::format("balloon size {} is not a multiple of 2 MiB ({}): the HyperAlloc "
                                                "balloon reclaims whole 2 MiB frames",
                                                bytes, kHyperAllocFrame)
                                  : fmt::format("balloon size {} is not a multiple of 4096", bytes));
    }
    if (bytes >= ram) {
        return error(Kind::bad_request,
                     fmt::format("balloon size {} must be smaller than guest memory ({})", bytes, ram));
    }
    auto set = m_hyperalloc ? m_hyperalloc->set_target(bytes) : m_balloon->set_target(bytes);
    if (!set) return error(Kind::bad_request, set.error().message());
    m_config.balloon->size = bytes;  // a reboot keeps the new size, as in cloud-hypervisor
    log::info("balloon target set to {} MiB through the API", bytes >> 20);
    return Empty{};
}

VmInfo Vm::info() const {
    VmInfo info;
    info.config = m_config;
    info.state = m_paused ? VmState::paused : VmState::running;
    info.memory_actual_size = m_memory->total_size();
    if (m_balloon || m_hyperalloc) {
        info.balloon = balloon_info();
        info.memory_actual_size -= std::min(info.memory_actual_size, info.balloon->actual_bytes);
    }
    for (const pci::PciDeviceInfo& d : m_pci->list()) info.devices.push_back({d.id, d.bdf, d.host_address});
    return info;
}

VmReply Vm::handle_request(const VmRequest& request) {
    using Kind = RequestError::Kind;
    return std::visit(
        Overloaded{
            [](const request::Ping&) -> VmReply { return ping_info(); },
            [this](const request::GetInfo&) -> VmReply { return info(); },
            [this](const request::GetCounters&) -> VmReply {
                DeviceCounters counters;
                for (const auto& slot : m_virtio->slots()) counters[slot.id] = slot.transport->device().counters();
                return counters;
            },
            [this](const request::Pause&) -> VmReply {
                if (m_paused) return error(Kind::wrong_state, "the VM is already paused");
                pause();
                m_paused = true;
                return Empty{};
            },
            [this](const request::Resume&) -> VmReply {
                if (!m_paused) return error(Kind::wrong_state, "the VM is not paused");
                resume();
                m_paused = false;
                return Empty{};
            },
            [this](const request::ShutdownVm&) -> VmReply {
                m_exits->request(VmExitKind::api_shutdown_vm, "shut down through the API");
                return Empty{};
            },
            [this](const request::ShutdownVmm&) -> VmReply {
                m_exits->request(VmExitKind::api_shutdown_vmm, "VMM shut down through the API");
                return Empty{};
            },
            [this](const request::Reboot&) -> VmReply {
                m_exits->request(VmExitKind::api_reboot, "rebooted through the API");
                return Empty{};
            },
            [this](const request::PowerButton&) -> VmReply {
                // No ACPI: the power button is Ctrl-Alt-Del on the keyboard controller,
                // which Linux turns into a reboot (or what its init asks for).
                if (!m_legacy->i8042->trigger_ctrl_alt_del()) {
                    return error(Kind::wrong_state, "the keyboard buffer is full; the guest is not reading it");
                }
                return Empty{};
            },
            [this](const request::ResizeBalloon& r) -> VmReply { return resize_balloon(r.bytes); },
            [this](const request::GetBalloonStatistics&) -> VmReply {
                if (!m_balloon && !m_hyperalloc) return error(Kind::not_found, "this VM has no balloon (--balloon)");
                return balloon_info();
            },
            [this](const request::AddDevice& r) -> VmReply { return add_device(r.device); },
            [this](const request::RemoveDevice& r) -> VmReply { return remove_device(r.id); },
        },
        request);
}

PingInfo ping_info() {
    PingInfo ping;
    ping.version = std::string(kVmmVersion);
    ping.pid = static_cast<int>(::getpid());
    ping.features = {"virtio-mmio", "virtio-balloon", "hyperalloc", "kvm", "pci", "vfio"};
    return ping;
}

}  // namespace vmm
