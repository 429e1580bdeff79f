// Everything needed to build and run one VM, as parsed from the command line (cli/)
// or, later, from the API. Plain data: validation happens in Vm::create.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "balloon/auto/policy_config.h"

namespace vmm {

struct CpusConfig {
    unsigned boot = 1;  // vCPUs started at boot
};

struct MemoryConfig {
    uint64_t size = 512ull << 20;  // bytes
    bool shared = false;           // memfd-backed (MAP_SHARED) instead of anonymous
    bool thp = true;               // advise transparent huge pages
    bool prefault = false;         // populate all guest RAM at start
};

struct PayloadConfig {
    std::string kernel;                    // vmlinux (ELF) or bzImage
    std::string cmdline;                   // kernel command line as given by the user
    std::optional<std::string> initramfs;  // initramfs image (any format the kernel reads)
};

// Where a console's output goes (and, for tty, where input comes from).
enum class ConsoleMode { off, null, tty, file };

struct ConsoleConfig {
    ConsoleMode mode = ConsoleMode::tty;
    std::string file;  // for ConsoleMode::file
};

// --disk path=,readonly=on|off,direct=on|off,id=   (virtio-blk on a raw file)
struct DiskConfig {
    std::string path;
    bool readonly = false;
    bool direct = false;  // O_DIRECT
    std::string id;       // defaults to "disk<N>"
};

// --net tap=,ip=,mask=,mac=,id=   (virtio-net on a tap device)
struct NetConfig {
    std::string tap;                 // name of the tap; created if it does not exist
    std::optional<std::string> ip;   // host-side address the VMM configures on the tap
    std::optional<std::string> mask;
    std::optional<std::string> mac;  // guest MAC "aa:bb:cc:dd:ee:ff"; random if absent
    std::string id;                  // defaults to "net<N>"
};

// --rng src=   (virtio-rng)
struct RngConfig {
    std::string src = "/dev/urandom";
};

// --balloon model=hyperalloc|virtio,size=,...  (docs/hyperalloc.md, docs/virtio.md)
enum class BalloonModel { hyperalloc, virtio };
enum class InstallPath { vcpu, worker };

struct BalloonConfig {
    BalloonModel model = BalloonModel::hyperalloc;
    uint64_t size = 0;  // initial target in bytes (hyperalloc: multiple of 2 MiB)
    // virtio-balloon only
    bool deflate_on_oom = false;
    bool free_page_reporting = false;
    uint32_t stats_polling_interval_s = 0;  // 0: no statistics queue
    // hyperalloc only
    bool auto_mode = false;             // auto=on: soft-reclaim free frames every period
    uint32_t auto_period_ms = 5000;     // period=5s
    uint64_t auto_limit_bytes = 0;      // auto_limit=SIZE per period; 0 = unlimited
    bool shrink_pagecache = true;       // shrink_pagecache=on|off
    InstallPath install_path = InstallPath::vcpu;  // install=vcpu|worker
    // auto=on, both models: the automatic balloon controller (docs/auto-balloon.md)
    // with its policy keys. For hyperalloc auto=on also sets auto_mode.
    std::optional<balloon::auto_balloon::AutoBalloonOptions> auto_balloon;
    // model=virtio only: accept a VFIO device although every page the guest gives
    // the balloon stays pinned for DMA (allow_vfio=on); refused by default.
    bool allow_vfio = false;
};

// --device path=/sys/bus/pci/devices/0000:01:00.0/,id=   (VFIO PCI passthrough,
// docs/vfio.md). `path` is the sysfs directory of a function bound to vfio-pci, or
// its PCI address ("0000:01:00.0").
struct VfioDeviceConfig {
    std::string path;
    std::string id;  // defaults to "vfio<N>"
};

// --seccomp true|false|log: per-thread syscall filters (docs/seccomp.md).
// on: a forbidden syscall kills the VMM; log: it is allowed and logged by the kernel.
enum class SeccompMode { off, on, log };

struct VmConfig {
    CpusConfig cpus;
    MemoryConfig memory;
    PayloadConfig payload;
    ConsoleConfig serial;                        // the 8250 at 0x3f8
    ConsoleConfig console{ConsoleMode::off, {}};  // virtio-console (hvc0)
    std::vector<DiskConfig> disks;
    std::vector<NetConfig> nets;
    std::optional<RngConfig> rng;
    std::optional<BalloonConfig> balloon;
    std::vector<VfioDeviceConfig> devices;  // set up after the balloon, whatever the flag order
    SeccompMode seccomp = SeccompMode::on;
};

}  // namespace vmm
