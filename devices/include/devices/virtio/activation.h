// Checks shared by every device's activate(): the context is complete, the device
// got the queues it offers, and the ones it needs are ready.
#pragma once

#include <string_view>

#include "common/result.h"
#include "devices/virtio/virtio_device.h"

namespace vmm::devices::virtio {

// Memory and interrupt present, exactly `queue_count` queues, and the first
// `required_ready` of them ready. Also applies the negotiated EVENT_IDX and
// INDIRECT_DESC to every queue (harmless when the transport already did).
[[nodiscard]] Result<void> prepare_activation(ActivateContext& context, std::string_view device,
                                              size_t queue_count, size_t required_ready);

}  // namespace vmm::devices::virtio
