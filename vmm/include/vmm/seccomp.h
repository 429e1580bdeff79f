// Per-thread seccomp filters (docs/seccomp.md). Every long-lived thread of the VMM
// installs, at the start of its own thread function, the allow list of its kind;
// anything else kills the process with SIGSYS (SeccompMode::on) or is allowed and
// logged by the kernel's audit (SeccompMode::log).
//
// Filters stack and are inherited by threads created later, and the kernel applies
// the strictest verdict of all of them. So a kind that creates threads allows a
// superset of what its children allow (the lists are built that way, and a unit
// test checks it): vmm ⊇ vcpu ∪ device_worker, api_accept ⊇ api_connection. A child
// then ends with exactly its own kind's set.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "vmm/vm_config.h"

namespace vmm {

enum class ThreadKind {
    vmm,             // the main thread: Vm::create/run, the event loop, API requests, hot-plug
    vcpu,            // KVM_RUN and the MMIO/port handlers (devices served on the vCPU)
    device_worker,   // a virtio device's own queue thread (HyperAlloc install, ...)
    api_accept,      // the API server's accept thread; starts the connection threads
    api_connection,  // one API connection: HTTP on an accepted socket, RequestChannel calls
};

inline constexpr ThreadKind kAllThreadKinds[] = {ThreadKind::vmm, ThreadKind::vcpu, ThreadKind::device_worker,
                                                 ThreadKind::api_accept, ThreadKind::api_connection};

// Whether a forbidden syscall kills the process in SeccompMode::on. Not in
// sanitized builds (VMM_SANITIZED_BUILD, docs/fuzzing.md): the sanitizer runtimes
// make calls of their own (sigaltstack, pipe2, ptrace, execve of the symbolizer),
// so there `on` logs like `log` does and the filters are still installed.
#ifdef VMM_SANITIZED_BUILD
inline constexpr bool kSeccompViolationsKill = false;
#else
inline constexpr bool kSeccompViolationsKill = true;
#endif

const char* to_string(ThreadKind kind);

// Sets PR_SET_NO_NEW_PRIVS and installs `kind`'s filter on the calling thread only
// (no TSYNC: the other threads keep theirs). SeccompMode::off installs nothing.
// Fails (and installs nothing) when the kernel or libseccomp refuses the filter.
[[nodiscard]] Result<void> apply_seccomp(ThreadKind kind, SeccompMode mode);

// The kind's allow list, one entry per rule, e.g. "read" or
// "ioctl(arg1 & 0xff00 == 0xae00)" (rules for one syscall are alternatives),
// sorted; "clone3 -> ENOSYS" marks the one call answered with an error instead.
std::vector<std::string> seccomp_rule_descriptions(ThreadKind kind);

}  // namespace vmm
