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
}  // namespace request

using VmRequest = std::variant<request::Ping, request::GetInfo, request::GetCounters, request::Pause,
                               request::Resume, request::ShutdownVm, request::ShutdownVmm, request::Reboot,
                               request::PowerButton, request::ResizeBalloon, request::GetBalloonStatistics>;

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
    uint64_t auto_limit_bytes = 0;  // 0: no limit
    uint64_t auto_reclaimed_bytes = 0;
    uint64_t discard_calls = 0;
    uint64_t bad_records = 0;
    bool pagecache_shrink_pending = false;
    std::vector<HyperAllocZoneInfo> zones;
    std::optional<uint64_t> host_rss_bytes;  // the VMM process's VmRSS when asked
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
};

struct VmInfo {
    VmConfig config;
    VmState state = VmState::created;
    uint64_t memory_actual_size = 0;  // guest RAM minus the balloon's actual size
    std::optional<BalloonInfo> balloon;
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
        not_found,    // 404: no VM, or no balloon
        wrong_state,  // 409: e.g. pause while paused
        internal,     // 500
    };
    Kind kind;
    std::string message;
};

struct Empty {};  // success without a body (204)

using VmReply = std::variant<Empty, PingInfo, VmInfo, DeviceCounters, BalloonInfo, RequestError>;

}  // namespace vmm
