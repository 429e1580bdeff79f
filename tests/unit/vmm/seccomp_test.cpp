// Each thread kind's seccomp filter in `on` mode, in a forked child: a syscall the
// kind may make works, one it must not make kills the process with SIGSYS.
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <thread>

#include "seccomp_child.h"

using vmm::SeccompMode;
using vmm::ThreadKind;
using vmm::test::ChildEnd;
using vmm::test::Mark;
using vmm::test::run_filtered;

namespace {

// Raw syscalls: what the kernel sees is exactly what the test means.
long raw_socket(int domain, int type) { return ::syscall(SYS_socket, domain, type, 0); }
long raw_open(const char* path) { return ::syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC); }

// A thread started and joined under the filter (glibc: clone3, then clone).
bool start_thread() {
    bool ran = false;
    std::thread t([&] { ran = true; });
    t.join();
    return ran;
}

// A listening Unix socket at an abstract address (nothing on disk), non-blocking.
int listening_socket() {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string name = "vmm-seccomp-test-" + std::to_string(::getpid());
    std::memcpy(addr.sun_path + 1, name.data(), name.size());
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 1) != 0) ::_exit(91);
    return fd;
}

// `marks`: what the child reports before its forbidden call, which must kill it.
// Sanitized builds only log (vmm::kSeccompViolationsKill): the child goes on.
void require_sigsys(const ChildEnd& end, const std::string& marks) {
    INFO(end);
    if (!vmm::kSeccompViolationsKill) {
        CHECK(end.marks == marks + "survived;");
        CHECK(end.exited);
        return;
    }
    CHECK(end.marks == marks);
    CHECK(end.killed_by_sigsys());
}

}  // namespace

TEST_CASE("seccomp vmm thread: tap config socket and threads yes, other sockets no", "[seccomp]") {
    auto end = run_filtered(ThreadKind::vmm, SeccompMode::on, [](const Mark& mark) {
        if (raw_socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC) >= 0) mark("dgram");
        if (start_thread()) mark("thread");
        // clone3 is answered ENOSYS (glibc falls back to clone, whose flags are checked).
        if (::syscall(SYS_clone3, nullptr, 0) < 0 && errno == ENOSYS) mark("clone3 enosys");
        raw_socket(AF_INET, SOCK_STREAM);
        mark("survived");
    });
    require_sigsys(end, "installed;dgram;thread;clone3 enosys;");
}

TEST_CASE("seccomp vmm thread: no new processes", "[seccomp]") {
    auto end = run_filtered(ThreadKind::vmm, SeccompMode::on, [](const Mark& mark) {
        // fork() as glibc makes it: clone without CLONE_THREAD.
        long pid = ::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) ::_exit(0);
        mark("survived");
    });
    require_sigsys(end, "installed;");
}

TEST_CASE("seccomp vmm thread: no execve, no ptrace, no executable mappings", "[seccomp]") {
    SECTION("execve") {
        auto end = run_filtered(ThreadKind::vmm, SeccompMode::on, [](const Mark& mark) {
            // A path that does not exist: should the call get through, it fails (ENOENT)
            // instead of replacing the child.
            const char* argv[] = {"/nonexistent/vmm-seccomp-test", nullptr};
            ::syscall(SYS_execve, argv[0], argv, nullptr);
            mark("survived");
        });
        require_sigsys(end, "installed;");
    }
    SECTION("ptrace") {
        auto end = run_filtered(ThreadKind::vmm, SeccompMode::on, [](const Mark& mark) {
            ::syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0);
            mark("survived");
        });
        require_sigsys(end, "installed;");
    }
    SECTION("PROT_EXEC") {
        auto end = run_filtered(ThreadKind::vmm, SeccompMode::on, [](const Mark& mark) {
            void* rw = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (rw != MAP_FAILED) mark("rw");
            ::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            mark("survived");
        });
        require_sigsys(end, "installed;rw;");
    }
}

TEST_CASE("seccomp vcpu thread: KVM and VFIO ioctls yes, sockets, files and other ioctls no", "[seccomp]") {
    int pipe_fds[2] = {-1, -1};
    auto setup = [&] { (void)!::pipe(pipe_fds); };
    SECTION("a socket (and a file open is refused)") {
        auto end = run_filtered(ThreadKind::vcpu, SeccompMode::on, [&](const Mark& mark) {
            // Not a KVM fd: ENOTTY, but the filter let the call through.
            if (::ioctl(pipe_fds[0], KVM_GET_API_VERSION) < 0 && errno == ENOTTY) mark("kvm ioctl");
            if (::ioctl(pipe_fds[0], VFIO_GET_API_VERSION) < 0 && errno == ENOTTY) mark("vfio ioctl");
            char byte = 'x';
            if (::write(pipe_fds[1], &byte, 1) == 1 && ::pread(pipe_fds[0], &byte, 1, 0) < 0) mark("write, pread");
            // Refused rather than fatal: glibc's malloc opens /proc files lazily.
            if (raw_open("/dev/null") < 0 && errno == EACCES) mark("open refused");
            raw_socket(AF_UNIX, SOCK_STREAM);
            mark("survived");
        }, setup);
        require_sigsys(end, "installed;kvm ioctl;vfio ioctl;write, pread;open refused;");
    }
    SECTION("an ioctl of another kind (FIONREAD)") {
        auto end = run_filtered(ThreadKind::vcpu, SeccompMode::on, [&](const Mark& mark) {
            int n = 0;
            ::ioctl(pipe_fds[0], FIONREAD, &n);
            mark("survived");
        }, setup);
        require_sigsys(end, "installed;");
    }
    SECTION("starting a thread") {
        auto end = run_filtered(ThreadKind::vcpu, SeccompMode::on, [](const Mark& mark) {
            start_thread();
            mark("survived");
        });
        require_sigsys(end, "installed;");
    }
}

TEST_CASE("seccomp device worker: epoll wait and DMA ioctls yes, epoll_ctl and sockets no", "[seccomp]") {
    int epoll_fd = -1;
    int pipe_fds[2] = {-1, -1};
    auto setup = [&] {
        epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
        (void)!::pipe(pipe_fds);
    };
    SECTION("epoll_ctl") {
        auto end = run_filtered(ThreadKind::device_worker, SeccompMode::on, [&](const Mark& mark) {
            epoll_event ev{};
            if (::epoll_wait(epoll_fd, &ev, 1, 0) == 0) mark("epoll_wait");
            if (::ioctl(pipe_fds[0], VFIO_IOMMU_MAP_DMA, nullptr) < 0 && errno == ENOTTY) mark("dma ioctl");
            ev.events = EPOLLIN;
            ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, pipe_fds[0], &ev);  // its fds are added before it starts
            mark("survived");
        }, setup);
        require_sigsys(end, "installed;epoll_wait;dma ioctl;");
    }
    SECTION("socket") {
        auto end = run_filtered(ThreadKind::device_worker, SeccompMode::on, [](const Mark& mark) {
            if (raw_open("/dev/null") < 0 && errno == EACCES) mark("open refused");
            raw_socket(AF_UNIX, SOCK_STREAM);
            mark("survived");
        });
        require_sigsys(end, "installed;open refused;");
    }
}

TEST_CASE("seccomp API accept thread: accept and threads yes, socket() no", "[seccomp]") {
    int listener = -1;
    auto setup = [&] { listener = listening_socket(); };
    SECTION("socket(AF_UNIX)") {
        auto end = run_filtered(ThreadKind::api_accept, SeccompMode::on, [&](const Mark& mark) {
            if (::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC) < 0 && errno == EAGAIN) mark("accept4");
            if (start_thread()) mark("thread");
            raw_socket(AF_UNIX, SOCK_STREAM);
            mark("survived");
        }, setup);
        require_sigsys(end, "installed;accept4;thread;");
    }
    SECTION("socket(AF_INET)") {
        auto end = run_filtered(ThreadKind::api_accept, SeccompMode::on, [](const Mark& mark) {
            raw_socket(AF_INET, SOCK_DGRAM);
            mark("survived");
        });
        require_sigsys(end, "installed;");
    }
    SECTION("a KVM ioctl") {
        int pipe_fds[2] = {-1, -1};
        auto end = run_filtered(ThreadKind::api_accept, SeccompMode::on, [&](const Mark& mark) {
            ::ioctl(pipe_fds[0], KVM_GET_API_VERSION);
            mark("survived");
        }, [&] { (void)!::pipe(pipe_fds); });
        require_sigsys(end, "installed;");
    }
}

TEST_CASE("seccomp API connection thread: socket I/O yes, accept and threads no", "[seccomp]") {
    int pair[2] = {-1, -1};
    int listener = -1;
    auto setup = [&] {
        (void)::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair);
        listener = listening_socket();
    };
    SECTION("accept4") {
        auto end = run_filtered(ThreadKind::api_connection, SeccompMode::on, [&](const Mark& mark) {
            char byte = 'x';
            if (::send(pair[0], &byte, 1, MSG_NOSIGNAL) == 1 && ::recv(pair[1], &byte, 1, 0) == 1) mark("send, recv");
            pollfd pfd{pair[1], POLLIN, 0};
            if (::poll(&pfd, 1, 0) == 0) mark("poll");
            ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
            mark("survived");
        }, setup);
        require_sigsys(end, "installed;send, recv;poll;");
    }
    SECTION("starting a thread") {
        auto end = run_filtered(ThreadKind::api_connection, SeccompMode::on, [](const Mark& mark) {
            start_thread();
            mark("survived");
        });
        require_sigsys(end, "installed;");
    }
}
