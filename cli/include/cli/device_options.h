// Parsers for the device flags (cloud-hypervisor grammar): each turns one value
// string into the matching VmConfig entry, with one-line errors.
#pragma once

#include <string_view>

#include "common/result.h"
#include "vmm/vm_config.h"

namespace vmm::cli {

// --disk path=PATH,readonly=on|off,direct=on|off,id=ID
[[nodiscard]] Result<DiskConfig> parse_disk(std::string_view value);
// --net tap=NAME,ip=A.B.C.D,mask=A.B.C.D,mac=aa:bb:cc:dd:ee:ff,id=ID
[[nodiscard]] Result<NetConfig> parse_net(std::string_view value);
// --rng [src=PATH]
[[nodiscard]] Result<RngConfig> parse_rng(std::string_view value);
// --console off|null|tty|file=PATH (also used for --serial)
[[nodiscard]] Result<ConsoleConfig> parse_console(std::string_view value);
// --balloon [model=hyperalloc],size=SIZE,auto=on|off,period=DURATION,auto_limit=SIZE,
//           shrink_pagecache=on|off,install=vcpu|worker
// --balloon model=virtio,size=SIZE,deflate_on_oom=on|off,free_page_reporting=on|off,
//           stats_polling_interval_s=N
// A key of the other model is an error. `ram` is the guest memory size: the balloon
// must be smaller.
// --device path=/sys/bus/pci/devices/DDDD:BB:SS.F/,id=ID  (VFIO; repeatable)
[[nodiscard]] Result<VfioDeviceConfig> parse_device(std::string_view value);
[[nodiscard]] Result<BalloonConfig> parse_balloon(std::string_view value, uint64_t ram);

}  // namespace vmm::cli
