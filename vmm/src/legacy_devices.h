// The legacy ISA devices of a VM and their interrupt lines (private to vmm/).
#pragma once

#include <memory>

#include "devices/legacy/debug_port.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"
#include "irq_line.h"

namespace vmm::devices_fwd {

class LegacyDevices {
public:
    std::shared_ptr<devices::Serial8250> serial;  // null with --serial off
    std::shared_ptr<devices::I8042> i8042;
    std::shared_ptr<devices::DebugPort> debug_port;
    std::shared_ptr<IrqFdLine> serial_irq;
    std::shared_ptr<IrqFdLine> i8042_irq;
};

}  // namespace vmm::devices_fwd
