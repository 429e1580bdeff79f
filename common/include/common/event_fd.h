// An eventfd used to wake threads (event loop, irqfd, ioeventfd).
#pragma once

#include <cstdint>

#include "common/result.h"
#include "common/unique_fd.h"

namespace vmm {

class EventFd {
public:
    [[nodiscard]] static Result<EventFd> create(bool nonblocking = true);

    // Adds 1 to the counter (wakes readers). Never blocks for nonblocking fds.
    [[nodiscard]] Result<void> signal() const;
    // Reads and clears the counter; returns 0 if it was already clear (nonblocking).
    [[nodiscard]] Result<uint64_t> consume() const;
    int fd() const { return m_fd.get(); }

private:
    explicit EventFd(UniqueFd fd) : m_fd(std::move(fd)) {}
    UniqueFd m_fd;
};

}  // namespace vmm
