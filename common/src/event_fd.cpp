#include "common/event_fd.h"

#include <sys/eventfd.h>

namespace vmm {

Result<EventFd> EventFd::create(bool nonblocking) {
    int fd = ::eventfd(0, EFD_CLOEXEC | (nonblocking ? EFD_NONBLOCK : 0));
    if (fd < 0) return Error::from_errno("eventfd");
    return EventFd(UniqueFd(fd));
}

Result<void> EventFd::signal() const {
    uint64_t one = 1;
    if (::write(m_fd.get(), &one, sizeof(one)) != sizeof(one)) {
        // EAGAIN means the counter is saturated: the reader is already woken.
        if (errno == EAGAIN) return ok();
        return Error::from_errno("eventfd write");
    }
    return ok();
}

Result<uint64_t> EventFd::consume() const {
    uint64_t value = 0;
    if (::read(m_fd.get(), &value, sizeof(value)) != sizeof(value)) {
        if (errno == EAGAIN) return uint64_t{0};
        return Error::from_errno("eventfd read");
    }
    return value;
}

}  // namespace vmm
