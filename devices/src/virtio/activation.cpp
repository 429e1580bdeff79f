#include "devices/virtio/activation.h"

namespace vmm::devices::virtio {

Result<void> prepare_activation(ActivateContext& context, std::string_view device, size_t queue_count,
                                size_t required_ready) {
    if (context.memory == nullptr || !context.interrupt) {
        return Error::msg("{}: activate without memory or interrupt", device);
    }
    if (context.queues.size() != queue_count) {
        return Error::msg("{}: expected {} queue{}, got {}", device, queue_count, queue_count == 1 ? "" : "s",
                          context.queues.size());
    }
    for (size_t i = 0; i < required_ready; ++i) {
        if (!context.queues[i].ready()) return Error::msg("{}: queue {} is not ready", device, i);
    }
    for (Queue& queue : context.queues) {
        queue.set_event_idx((context.acked_features & kFeatureEventIdx) != 0);
        queue.set_indirect_allowed((context.acked_features & kFeatureIndirectDesc) != 0);
    }
    return ok();
}

}  // namespace vmm::devices::virtio
