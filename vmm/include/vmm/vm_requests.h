// Typed requests the API thread sends to the VMM thread, and their replies. The
// API never touches devices: it builds a VmRequest, posts it on a RequestChannel
// and waits for the VmReply the VMM thread produces (vmm/request_channel.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "vmm/vm_config.h"

namespace vmm {

namespace request {
struct Ping {};
struct GetInfo {};
struct GetCounters {};
struct Pause {};
struct Resume {};
struct ShutdownVm {};     // the VM ends; the VMM process stays up for the API
struct ShutdownVmm {};    // the VMM process exits (status 0)
struct Reboot {};         // the VM is torn down and booted again from its config
struct PowerButton {};    // Ctrl-Alt-Del through the i8042 (there is no ACPI)
struct ResizeBalloon {
    uint64_t bytes;       // new target; validated against guest RAM on the VMM thread
};
struct GetBalloonStatistics {};
struct AddDevice {        // VFIO hot-add (cloud-hypervisor's vm.add-device body)
    VfioDeviceConfig device;
};
struct RemoveDevice {
    std::string id;
};
}  // namespace request

using VmRequest = std::variant<request::Ping, request::GetInfo, request::GetCounters, request::Pause,
                               request::Resume, request::ShutdownVm, request::ShutdownVmm, request::Reboot,
                               request::PowerButton, request::ResizeBalloon, request::GetBalloonStatistics,
                               request::AddDevice, request::RemoveDevice>;

enum class VmState { created, running, paused, shutdown };
const char* to_string(VmState state);  // cloud-hypervisor's names: Created, Running, Paused, Shutdown

// The guest's statistics as the balloon last received them (Firecracker's names).
struct BalloonStatistics {
    std::map<std::string, uint64_t> values;  // only the tags the guest reported
    std::chrono::system_clock::time_point updated_at;
};

// One LLFree zone the HyperAlloc guest reported.
struct HyperAllocZoneInfo {
    std::string type;  // "DMA32", "NORMAL", "MOVABLE"
    uint64_t start_pfn = 0;
    uint64_t pages = 0;
};

// The HyperAlloc balloon's state (balloon/hyperalloc/hyperalloc_device.h, stats()).
struct HyperAllocInfo {
    uint64_t target_bytes = 0;
    uint64_t hard_reclaimed_bytes = 0;  // taken from the guest: the balloon's size
    uint64_t soft_reclaimed_bytes = 0;  // still the guest's, unbacked until installed
    std::optional<uint64_t> guest_free_bytes;  // from the guest's counters, when known
    std::optional<uint64_t> page_cache_bytes;
    uint64_t installs = 0;
    uint64_t install_requests = 0;
    uint64_t install_errors = 0;
    double installs_per_s = 0;
    bool auto_mode = false;
    uint32_t auto_period_ms = 0;
    uint64_t auto_limit_bytes = 0;  // the current per-pass limit; 0: no limit
    bool auto_paused = false;       // the controller stopped soft reclaim
    uint64_t auto_reclaimed_bytes = 0;
    uint64_t discard_calls = 0;
    uint64_t bad_records = 0;
    bool pagecache_shrink_pending = false;
    std::vector<HyperAllocZoneInfo> zones;
    std::optional<uint64_t> host_rss_bytes;  // the VMM process's VmRSS when asked
};

// One decision of the automatic balloon controller (balloon/auto/policy.h).
struct AutoBalloonDecisionInfo {
    std::string action;         // "none", "inflate", "deflate", "cancel_inflate"
    uint64_t target_bytes = 0;  // the balloon target after the decision
    // HyperAlloc: the soft-reclaim limit per auto pass it set; 0 = stopped,
    // UINT64_MAX = unlimited; nullopt for the virtio-balloon.
    std::optional<uint64_t> soft_reclaim_bytes;
    std::string reason;
    double at_s = 0;  // seconds since the VMM started (the log's t=)
};

// A PSI sample (percentages of wall time; totals in µs).
struct PsiInfo {
    double some_avg10 = 0, some_avg60 = 0, some_avg300 = 0;
    uint64_t some_total_us = 0;
    std::optional<double> full_avg10, full_avg60, full_avg300;
    std::optional<uint64_t> full_total_us;
};

// The automatic balloon controller's state (vmm/auto_balloon.h), for vm.info and
// vm.balloon-statistics.
struct AutoBalloonInfo {
    std::string psi_path;         // empty: no PSI source (opening it failed)
    std::string psi_mode;         // "trigger", "periodic" or "unavailable"
    std::string psi_mode_reason;  // why (the trigger text, or the error)
    std::optional<PsiInfo> last_psi;
    std::optional<std::string> psi_error;  // the latest read failed
    std::optional<AutoBalloonDecisionInfo> last_decision;
    std::optional<AutoBalloonDecisionInfo> last_action;  // the latest that changed something
    uint64_t ticks = 0;       // policy runs
    uint64_t psi_events = 0;  // runs started by the PSI trigger
    uint64_t inflates = 0, deflates = 0, cancels = 0;
    uint64_t apply_errors = 0;  // decisions the balloon refused
    std::optional<double> in_hysteresis_until_s;  // null before any guest pressure
    bool in_hysteresis = false;
    bool host_pressure = false;
    bool guest_pressure = false;
    std::optional<double> major_faults_per_s;
    std::optional<double> alloc_stalls_per_s;
    std::optional<double> installs_per_s;            // HyperAlloc
    std::optional<uint64_t> guest_available_bytes;   // as the policy last saw it
    // The settings that shape the decisions.
    uint64_t tick_ms = 0, hysteresis_ms = 0, step_bytes = 0, floor_bytes = 0;
};

struct BalloonInfo {
    std::string kind;             // "virtio-balloon" or "hyperalloc"
    uint64_t target_bytes = 0;    // what the host asked for
    uint64_t actual_bytes = 0;    // what the guest has given back (HyperAlloc: hard-reclaimed)
    // virtio-balloon only
    bool deflate_on_oom = false;
    bool free_page_reporting = false;
    uint32_t stats_polling_interval_s = 0;
    std::optional<BalloonStatistics> statistics;  // absent until the guest sent some
    std::optional<HyperAllocInfo> hyperalloc;     // kind "hyperalloc" only
    std::optional<AutoBalloonInfo> auto_balloon;  // with auto=on only
};

// A PCI function assigned to the guest: vm.add-device's answer (PciDeviceInfo in
// cloud-hypervisor) and one entry of vm.info's "devices".
struct AssignedDevice {
    std::string id;
    std::string bdf;   // the guest's "0000:00:SS.0"
    std::string path;  // the host function, "0000:01:00.0"
};

struct VmInfo {
    VmConfig config;
    VmState state = VmState::created;
    uint64_t memory_actual_size = 0;  // guest RAM minus the balloon's actual size
    std::optional<BalloonInfo> balloon;
    std::vector<AssignedDevice> devices;
};

struct PingInfo {
    std::string version;
    int pid = 0;
    std::vector<std::string> features;
};

using DeviceCounters = std::map<std::string, std::map<std::string, uint64_t>>;  // device id -> counters

// Why a request failed, mapped to HTTP status codes by the API.
struct RequestError {
    enum class Kind {
        bad_request,  // 400: invalid value (e.g. balloon larger than RAM)
        not_found,    // 404: no VM, no balloon, no such device
        wrong_state,  // 409: e.g. pause while paused
        internal,     // 500
    };
    Kind kind;
    std::string message;
};

struct Empty {};  // success without a body (204)

using VmReply = std::variant<Empty, PingInfo, VmInfo, DeviceCounters, BalloonInfo, AssignedDevice, RequestError>;

}  // namespace vmm
