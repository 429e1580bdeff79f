// What each thread kind may call. Found by running the kvm, api and integration
// tests with --seccomp log and reading the kernel's audit records (docs/seccomp.md
// says how); every group below says why it exists. Argument conditions are added
// where they are cheap to check and close a real door: ioctl only on the KVM, VFIO,
// TUN/tty and interface-configuration request types, clone only for threads,
// socket only for the tap's configuration socket, no executable mappings,
// signals only within this process.
#include "rules.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <initializer_list>
#include <tuple>

namespace vmm::seccomp_rules {
namespace {

constexpr uint64_t kLow32 = 0xffff'ffff;
constexpr uint64_t kIoctlTypeMask = 0xff00;  // _IOC_TYPEMASK << _IOC_TYPESHIFT
constexpr uint64_t kSockTypeMask = 0xf;      // SOCK_TYPE_MASK: without SOCK_CLOEXEC/NONBLOCK
constexpr uint64_t kTunTtyIoctlType = 'T';   // TUNSETIFF... and TCGETS/TCSETS...
constexpr uint64_t kSockIoctlType = 0x89;    // SIOCGIFFLAGS, SIOCSIFADDR, ...
constexpr uint64_t kGlibcSigCancel = 32;  // __SIGRTMIN, reserved by glibc (SIGRTMIN is 34)
constexpr uint64_t kGlibcSigSetxid = 33;  // __SIGRTMIN + 1
constexpr uint64_t kNamespaceFlags =
    CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;

// (arg & mask) == value. Every comparison is masked: the ABI leaves the upper half
// of a register holding an int undefined, so a plain 64-bit == could miss.
scmp_arg_cmp masked(unsigned arg, uint64_t mask, uint64_t value) {
    return scmp_arg_cmp{arg, SCMP_CMP_MASKED_EQ, mask, value};
}
scmp_arg_cmp eq32(unsigned arg, uint64_t value) { return masked(arg, kLow32, value); }
scmp_arg_cmp ioctl_type(uint64_t type) { return masked(1, kIoctlTypeMask, type << 8); }

Rule allow(int nr) { return Rule{nr, {}, 0, false}; }
Rule allow_if(int nr, std::initializer_list<scmp_arg_cmp> args) { return Rule{nr, args, 0, false}; }

void append(std::vector<Rule>& to, const std::vector<Rule>& from) { to.insert(to.end(), from.begin(), from.end()); }

// Every thread: logging (stdio/fmt: write, fstat for the log file's buffer),
// memory management under malloc and thread stacks (mmap, madvise, brk, mremap),
// locks and condition variables (futex), time, signals inside the process
// (pthread_kill, abort), and ending a thread or the process.
std::vector<Rule> runtime() {
    return {
        allow(SCMP_SYS(read)),
        allow(SCMP_SYS(write)),
        allow(SCMP_SYS(readv)),
        allow(SCMP_SYS(writev)),
        allow(SCMP_SYS(close)),
        allow(SCMP_SYS(fstat)),
        allow(SCMP_SYS(newfstatat)),
        allow(SCMP_SYS(lseek)),
        allow_if(SCMP_SYS(ioctl), {eq32(1, TCGETS)}),  // isatty() when stdio sets up a stream
        allow(SCMP_SYS(futex)),
        allow(SCMP_SYS(clock_gettime)),
        allow(SCMP_SYS(clock_nanosleep)),
        allow(SCMP_SYS(nanosleep)),
        allow(SCMP_SYS(gettimeofday)),
        allow(SCMP_SYS(sched_yield)),
        allow_if(SCMP_SYS(mmap), {masked(2, PROT_EXEC, 0)}),
        allow_if(SCMP_SYS(mprotect), {masked(2, PROT_EXEC, 0)}),
        allow(SCMP_SYS(munmap)),
        allow(SCMP_SYS(mremap)),
        allow(SCMP_SYS(madvise)),  // malloc, thread stacks, and the balloons' discards
        allow(SCMP_SYS(brk)),
        allow(SCMP_SYS(rt_sigprocmask)),
        allow(SCMP_SYS(rt_sigreturn)),  // the vCPU kick handler returns through it
        allow(SCMP_SYS(restart_syscall)),
        allow(SCMP_SYS(getpid)),
        allow(SCMP_SYS(gettid)),
        allow_if(SCMP_SYS(tgkill), {eq32(0, static_cast<uint64_t>(::getpid()))}),
        allow(SCMP_SYS(exit)),
        allow(SCMP_SYS(exit_group)),
    };
}

// Guest-facing device work, done on whichever thread handles the queue: the event
// loop, the notifying vCPU, or a device worker. Disks (pread/pwrite, flushes),
// taps and rng (read/write, in runtime()), discarding guest RAM in a shared
// memfd (punching holes only: the file never grows), KVM (irq routing, MSI-X) and
// VFIO (DMA map/unmap, region access, IRQ set-up) ioctls. The transport's
// register writes (device activation, reset, MSI-X) run on the vCPU thread too.
std::vector<Rule> device_io() {
    return {
        allow(SCMP_SYS(pread64)),
        allow(SCMP_SYS(pwrite64)),
        allow(SCMP_SYS(preadv)),
        allow(SCMP_SYS(pwritev)),
        allow(SCMP_SYS(preadv2)),
        allow(SCMP_SYS(pwritev2)),
        allow(SCMP_SYS(fsync)),
        allow(SCMP_SYS(fdatasync)),
        allow_if(SCMP_SYS(fallocate), {eq32(1, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)}),
        allow_if(SCMP_SYS(ioctl), {ioctl_type(KVMIO)}),
        allow_if(SCMP_SYS(ioctl), {ioctl_type(VFIO_TYPE)}),
        // A guest enabling MSI/MSI-X on a VFIO function gets an eventfd per vector
        // (irqfd); a balloon activated or reconfigured re-arms its timers.
        allow(SCMP_SYS(eventfd2)),
        allow(SCMP_SYS(timerfd_settime)),
        allow(SCMP_SYS(timerfd_gettime)),
    };
}

// Threads that never open files: an open fails with EACCES instead of killing.
// glibc's malloc opens /proc and /sys files lazily, once per process, from
// whichever thread gets there first (/proc/sys/vm/overcommit_memory when a thread's
// heap shrinks, /sys/devices/system/cpu/online for the arena limit) and copes with
// the open failing; killing the VMM for it would not. The door stays shut.
// In log mode the open is allowed and logged instead, like any other.
std::vector<Rule> refused_file_opens() {
    return {Rule{SCMP_SYS(openat), {}, EACCES, true}, Rule{SCMP_SYS(open), {}, EACCES, true},
            allow(SCMP_SYS(sched_getaffinity))};  // get_nprocs()' fallback when the opens fail
}

// Waiting in an epoll loop whose fds were all added before the thread started.
std::vector<Rule> event_wait() { return {allow(SCMP_SYS(epoll_wait)), allow(SCMP_SYS(epoll_pwait))}; }

// Starting threads (std::thread): clone for threads only, never a process or a new
// namespace; clone3 answers ENOSYS because its flags sit in memory seccomp cannot
// read, and glibc then falls back to clone. The new thread runs glibc's set-up
// (robust futex list, rseq) and then installs its own filter (prctl, seccomp)
// under this one, and names itself.
std::vector<Rule> thread_spawning() {
    constexpr uint64_t need = CLONE_THREAD | CLONE_VM;
    return {
        allow_if(SCMP_SYS(clone), {masked(0, need | kNamespaceFlags, need)}),
        Rule{SCMP_SYS(clone3), {}, ENOSYS, false},
        allow(SCMP_SYS(set_robust_list)),
        allow(SCMP_SYS(rseq)),
        allow(SCMP_SYS(sched_getaffinity)),
        // glibc's first pthread_create in a process installs its internal SIGSETXID
        // handler (SIGCANCEL's comes with pthread_cancel); no other signal.
        allow_if(SCMP_SYS(rt_sigaction), {eq32(0, kGlibcSigCancel)}),
        allow_if(SCMP_SYS(rt_sigaction), {eq32(0, kGlibcSigSetxid)}),
        allow_if(SCMP_SYS(prctl), {eq32(0, PR_SET_NAME)}),
        allow_if(SCMP_SYS(prctl), {eq32(0, PR_SET_NO_NEW_PRIVS)}),
        allow_if(SCMP_SYS(prctl), {eq32(0, PR_GET_SECCOMP)}),
        allow(SCMP_SYS(seccomp)),  // can only ever add restrictions
    };
}

// An API connection: HTTP over the accepted Unix socket, waiting with poll, and
// handing requests to the VMM thread (an eventfd write and a futex wait). No
// socket(), connect() or file opens: the listening socket exists before any API
// thread does.
std::vector<Rule> api_connection() {
    std::vector<Rule> rules = runtime();
    append(rules, refused_file_opens());
    append(rules, {allow(SCMP_SYS(recvfrom)), allow(SCMP_SYS(sendto)), allow(SCMP_SYS(poll)),
                   allow(SCMP_SYS(ppoll))});
    return rules;
}

// The accept thread: accept4 on the listening socket, and a thread per connection.
std::vector<Rule> api_accept() {
    std::vector<Rule> rules = api_connection();
    append(rules, thread_spawning());
    append(rules, {allow(SCMP_SYS(accept4))});
    return rules;
}

std::vector<Rule> vcpu() {
    std::vector<Rule> rules = runtime();
    append(rules, refused_file_opens());
    append(rules, device_io());
    return rules;
}

std::vector<Rule> device_worker() {
    std::vector<Rule> rules = runtime();
    append(rules, refused_file_opens());
    append(rules, device_io());
    append(rules, event_wait());
    return rules;
}

// The VMM thread builds the VM (again on vm.reboot, so Vm::create runs under the
// filter): kernel/initramfs/disk/rng/console files, /dev/kvm, guest RAM (memfd),
// taps (/dev/net/tun, TUN ioctls, an AF_INET datagram socket for the SIOC*IF*
// ioctls), event loop fds (epoll, eventfd, timerfd), PSI triggers, the kick signal
// handler; it hot-plugs VFIO devices (/dev/vfio/N, sysfs links and files, BAR
// mmaps) and, at exit, restores the terminal (TCSETS) and removes the API socket.
// It creates the vCPU and device worker threads, so it allows all they allow.
std::vector<Rule> vmm_only() {
    return {
        allow(SCMP_SYS(openat)),
        // Nothing of ours calls open(2) (glibc opens with openat), but the sanitizer
        // runtimes do, e.g. LeakSanitizer's exit-time check lists /proc/<pid>/task
        // from the exiting VMM thread; it can do no more than openat above.
        allow(SCMP_SYS(open)),
        allow(SCMP_SYS(statfs)),
        allow(SCMP_SYS(fstatfs)),
        allow(SCMP_SYS(readlink)),
        allow(SCMP_SYS(readlinkat)),
        allow(SCMP_SYS(getdents64)),
        allow(SCMP_SYS(ftruncate)),
        allow(SCMP_SYS(memfd_create)),
        allow(SCMP_SYS(fcntl)),
        allow(SCMP_SYS(unlink)),
        allow_if(SCMP_SYS(socket), {eq32(0, AF_INET), masked(1, kSockTypeMask, SOCK_DGRAM)}),
        allow_if(SCMP_SYS(ioctl), {ioctl_type(kTunTtyIoctlType)}),
        allow_if(SCMP_SYS(ioctl), {ioctl_type(kSockIoctlType)}),
        allow(SCMP_SYS(epoll_create1)),
        allow(SCMP_SYS(epoll_ctl)),
        allow(SCMP_SYS(eventfd2)),
        allow(SCMP_SYS(timerfd_create)),
        allow(SCMP_SYS(timerfd_settime)),
        allow(SCMP_SYS(timerfd_gettime)),
        allow(SCMP_SYS(poll)),
        allow(SCMP_SYS(ppoll)),
        allow(SCMP_SYS(rt_sigaction)),
        allow(SCMP_SYS(getrandom)),
    };
}

std::vector<Rule> vmm() {
    std::vector<Rule> rules = vcpu();
    append(rules, device_worker());
    append(rules, thread_spawning());
    append(rules, vmm_only());
    return rules;
}

bool same_args(const Rule& a, const Rule& b) {
    auto key = [](const scmp_arg_cmp& c) { return std::tie(c.arg, c.op, c.datum_a, c.datum_b); };
    return std::equal(a.args.begin(), a.args.end(), b.args.begin(), b.args.end(),
                      [&](const scmp_arg_cmp& x, const scmp_arg_cmp& y) { return key(x) == key(y); });
}

// Drops duplicates (the kinds share groups), and every other rule for a syscall
// that is also allowed outright (libseccomp refuses such a mix): the VMM thread's
// openat wins over the vCPU group's refusal it includes.
std::vector<Rule> normalize(std::vector<Rule> rules) {
    std::vector<Rule> out;
    for (const Rule& r : rules) {
        bool allowed_outright = std::any_of(rules.begin(), rules.end(), [&](const Rule& o) {
            return o.syscall == r.syscall && o.args.empty() && o.error == 0;
        });
        if (allowed_outright && (!r.args.empty() || r.error != 0)) continue;
        bool seen = std::any_of(out.begin(), out.end(), [&](const Rule& o) {
            return o.syscall == r.syscall && o.error == r.error && same_args(o, r);
        });
        if (!seen) out.push_back(r);
    }
    return out;
}

}  // namespace

std::vector<Rule> rules_for(ThreadKind kind) {
    switch (kind) {
        case ThreadKind::vmm: return normalize(vmm());
        case ThreadKind::vcpu: return normalize(vcpu());
        case ThreadKind::device_worker: return normalize(device_worker());
        case ThreadKind::api_accept: return normalize(api_accept());
        case ThreadKind::api_connection: return normalize(api_connection());
    }
    return {};
}

}  // namespace vmm::seccomp_rules
