// The VMM's seccomp filters end to end: run_vmm (which filters the VMM thread
// before Vm::create) boots the test guest in a forked child, and the parent reads
// every thread's Seccomp line in /proc/<child>/task: the VMM thread, the vCPUs and
// a HyperAlloc install worker are all filtered by default, and nothing when off.
// The compute guest running to its end shows the filters allow a whole VM life.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "vmm/vmm_runner.h"

namespace vmm::test {
namespace {

using namespace std::chrono_literals;

struct ThreadStatus {
    int seccomp = -1;  // 0 none, 2 filter
    int filters = -1;
};

VmConfig guest_config(const std::string& mode, unsigned cpus, SeccompMode seccomp) {
    VmConfig config;
    config.cpus.boot = cpus;
    config.memory.size = 128ull << 20;
    config.payload.kernel = TEST_GUEST_ELF;
    config.payload.cmdline = "testguest.mode=" + mode;
    config.serial.mode = ConsoleMode::off;
    config.console.mode = ConsoleMode::off;
    // A HyperAlloc balloon whose install queues run on a device worker thread.
    BalloonConfig balloon;
    balloon.install_path = InstallPath::worker;
    config.balloon = balloon;
    config.seccomp = seccomp;
    return config;
}

// The child becomes a VMM process: exit status 0 when the guest ended cleanly.
pid_t fork_vmm(const VmConfig& config) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a failed test
        ::prctl(PR_SET_DUMPABLE, 0);         // no core file should a filter kill it
        auto status = run_vmm(config, nullptr);
        if (!status) std::fprintf(stderr, "run_vmm: %s\n", status.error().message().c_str());
        ::_exit(status ? *status : 1);
    }
    return pid;
}

// name -> status, for every thread of `pid`: "main" (the VMM thread), else its comm
// (vcpuN, virtio-balloon; the kernel may add a kvm-* worker).
std::map<std::string, ThreadStatus> threads_of(pid_t pid) {
    std::map<std::string, ThreadStatus> out;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
        std::string comm;
        std::getline(std::ifstream(task.path() / "comm"), comm);
        std::ifstream status(task.path() / "status");
        ThreadStatus s;
        for (std::string line; std::getline(status, line);) {
            std::istringstream fields(line);
            std::string key;
            fields >> key;
            if (key == "Seccomp:") fields >> s.seccomp;
            if (key == "Seccomp_filters:") fields >> s.filters;
        }
        if (task.path().filename() == std::to_string(pid)) comm = "main";
        if (!comm.empty()) out[comm] = s;
    }
    return out;
}

// Waits until the vCPU and worker threads exist (they name themselves, then filter).
std::map<std::string, ThreadStatus> wait_for_threads(pid_t pid, unsigned cpus) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    for (;;) {
        auto threads = threads_of(pid);
        std::vector<std::string> names = {"virtio-balloon"};
        for (unsigned i = 0; i < cpus; ++i) names.push_back(fmt::format("vcpu{}", i));
        bool all = true;
        for (const auto& name : names) {
            auto it = threads.find(name);
            // A thread names itself just before it installs its filter: wait for that too.
            all = all && it != threads.end() && (it->second.seccomp == 0 || it->second.filters == 2);
        }
        if (all || std::chrono::steady_clock::now() > deadline) return threads;
        std::this_thread::sleep_for(20ms);
    }
}

int stop(pid_t pid) {
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
}

}  // namespace

TEST_CASE("by default every VMM thread runs under its seccomp filter", "[seccomp]") {
    constexpr unsigned kCpus = 2;
    pid_t pid = fork_vmm(guest_config("counter", kCpus, VmConfig{}.seccomp));
    auto threads = wait_for_threads(pid, kCpus);
    std::this_thread::sleep_for(300ms);
    int status = 0;
    bool still_running = ::waitpid(pid, &status, WNOHANG) == 0;
    stop(pid);
    REQUIRE(still_running);
    REQUIRE(threads.count("main") == 1);
    CHECK(threads["main"].seccomp == 2);
    CHECK(threads["main"].filters == 1);
    // Their own filter stacked on the VMM thread's (a superset of theirs).
    for (std::string name : {"vcpu0", "vcpu1", "virtio-balloon"}) {
        INFO(name);
        REQUIRE(threads.count(name) == 1);
        CHECK(threads[name].seccomp == 2);
        CHECK(threads[name].filters == 2);
    }
    for (const auto& [name, s] : threads) {
        INFO(name);
        CHECK(s.seccomp == 2);
    }
}

TEST_CASE("with seccomp off no VMM thread is filtered", "[seccomp]") {
    constexpr unsigned kCpus = 2;
    pid_t pid = fork_vmm(guest_config("counter", kCpus, SeccompMode::off));
    auto threads = wait_for_threads(pid, kCpus);
    stop(pid);
    REQUIRE(threads.count("vcpu1") == 1);
    REQUIRE(threads.count("virtio-balloon") == 1);
    for (const auto& [name, s] : threads) {
        INFO(name);
        CHECK(s.seccomp == 0);
    }
}

TEST_CASE("the compute guest runs to its end under the default filters", "[seccomp]") {
    pid_t pid = fork_vmm(guest_config("compute", 1, SeccompMode::on));
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + 120s;
    pid_t done = 0;
    while ((done = ::waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
    }
    if (done == 0) status = stop(pid);
    INFO("wait status " << status);
    CHECK_FALSE((WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS));
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

}  // namespace vmm::test
