// The request loop shared by simple request/response devices (blk, rng): pop
// every available chain, let the device handle it, publish the used length, then
// ask the ring whether the driver wants an interrupt. Any ring error stops the
// loop and means DEVICE_NEEDS_RESET. The caller signals outside its lock.
#pragma once

#include <cstdint>

#include "common/result.h"
#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace vmm::devices::virtio {

struct DrainOutcome {
    bool notify = false;       // raise a used-buffer interrupt
    bool needs_reset = false;  // the driver broke the ring
};

// handle(const DescriptorChain&) -> uint32_t bytes written into the chain;
// on_error(const Error&) reports a ring error (rate-limited by the caller).
template <typename Handler, typename OnError>
DrainOutcome drain_queue(Queue& queue, const memory::GuestMemory& mem, Handler&& handle, OnError&& on_error) {
    DrainOutcome out;
    bool added = false;
    for (;;) {
        auto chain = queue.pop(mem);
        if (!chain) {
            on_error(chain.error());
            out.needs_reset = true;
            return out;
        }
        if (!chain->has_value()) break;
        uint32_t used = handle(**chain);
        if (auto r = queue.add_used(mem, (*chain)->head(), used); !r) {
            on_error(r.error());
            out.needs_reset = true;
            return out;
        }
        added = true;
    }
    if (added) {
        auto wanted = queue.needs_notification(mem);
        if (!wanted) {
            on_error(wanted.error());
            out.needs_reset = true;
            return out;
        }
        out.notify = *wanted;
    }
    return out;
}

}  // namespace vmm::devices::virtio
