// Runs a piece of test code in a forked child under a thread kind's seccomp filter
// and reports how the child ended: a forbidden syscall must kill it with SIGSYS,
// so the filter can only be tried in a process of its own. The child reports each
// step it survived through a pipe ("installed;" first, then the body's marks).
#pragma once

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <functional>
#include <string>
#include <string_view>

#include "vmm/seccomp.h"

namespace vmm::test {

struct ChildEnd {
    std::string marks;  // "installed;..." as far as the child got
    bool exited = false;
    int exit_code = -1;
    int signal = 0;  // when it did not exit
    bool killed_by_sigsys() const { return !exited && signal == SIGSYS; }
};

inline std::ostream& operator<<(std::ostream& os, const ChildEnd& end) {
    os << "marks '" << end.marks << "', ";
    if (end.exited) return os << "exited " << end.exit_code;
    return os << "killed by signal " << end.signal;
}

// What the body calls after a step it survived (one write(2): allowed everywhere).
using Mark = std::function<void(std::string_view)>;

// `setup` runs in the child before the filter (to open what the body needs).
inline ChildEnd run_filtered(ThreadKind kind, SeccompMode mode, const std::function<void(const Mark&)>& body,
                             const std::function<void()>& setup = {}) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(fds[0]);
        ::prctl(PR_SET_DUMPABLE, 0);  // no core file for the expected SIGSYS
        Mark mark = [fd = fds[1]](std::string_view what) {
            std::string line = std::string(what) + ";";
            (void)!::write(fd, line.data(), line.size());
        };
        if (setup) setup();
        if (!apply_seccomp(kind, mode)) ::_exit(90);
        mark("installed");
        body(mark);
        ::_exit(0);  // never back into Catch in the child
    }
    ::close(fds[1]);
    ChildEnd end;
    char buf[256];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0) end.marks.append(buf, static_cast<size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) REQUIRE(errno == EINTR);
    end.exited = WIFEXITED(status);
    if (end.exited) end.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) end.signal = WTERMSIG(status);
    return end;
}

}  // namespace vmm::test
