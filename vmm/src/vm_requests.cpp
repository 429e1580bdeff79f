// The VMM thread's answers to API requests (see vmm/vm_requests.h).
#include <unistd.h>

#include "balloon/virtio_balloon.h"
#include "common/log.h"
#include "legacy_devices.h"
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

}  // namespace

BalloonInfo Vm::balloon_info() const {
    const auto* b = m_balloon.get();
    const BalloonConfig& cfg = *m_config.balloon;
    BalloonInfo info;
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

VmInfo Vm::info() const {
    VmInfo info;
    info.config = m_config;
    info.state = m_paused ? VmState::paused : VmState::running;
    info.memory_actual_size = m_memory->total_size();
    if (m_balloon) {
        info.balloon = balloon_info();
        info.memory_actual_size -= std::min(info.memory_actual_size, info.balloon->actual_bytes);
    }
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
            [this](const request::ResizeBalloon& r) -> VmReply {
                if (!m_balloon) return error(Kind::not_found, "this VM has no balloon (--balloon)");
                uint64_t ram = m_memory->total_size();
                if (r.bytes % 4096 != 0) {
                    return error(Kind::bad_request, fmt::format("balloon size {} is not a multiple of 4096", r.bytes));
                }
                if (r.bytes >= ram) {
                    return error(Kind::bad_request,
                                 fmt::format("balloon size {} must be smaller than guest memory ({})", r.bytes, ram));
                }
                if (auto set = m_balloon->set_target(r.bytes); !set) {
                    return error(Kind::bad_request, set.error().message());
                }
                m_config.balloon->size = r.bytes;  // a reboot keeps the new size, as in cloud-hypervisor
                log::info("balloon target set to {} MiB through the API", r.bytes >> 20);
                return Empty{};
            },
            [this](const request::GetBalloonStatistics&) -> VmReply {
                if (!m_balloon) return error(Kind::not_found, "this VM has no balloon (--balloon)");
                return balloon_info();
            },
        },
        request);
}

PingInfo ping_info() {
    PingInfo ping;
    ping.version = std::string(kVmmVersion);
    ping.pid = static_cast<int>(::getpid());
    ping.features = {"virtio-mmio", "virtio-balloon", "kvm"};
    return ping;
}

}  // namespace vmm
