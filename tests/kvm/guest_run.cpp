#include "guest_run.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace vmm::test {

void bounded(const std::string& what, std::chrono::milliseconds limit, const std::function<void()>& fn) {
    auto done = std::async(std::launch::async, fn);
    if (done.wait_for(limit) != std::future_status::ready) {
        std::fprintf(stderr, "HANG: %s did not return within %lld ms\n", what.c_str(),
                     static_cast<long long>(limit.count()));
        std::fflush(stderr);
        std::_Exit(3);  // the stuck call cannot be unwound; the future's destructor would block
    }
    done.get();
}

namespace {

std::string make_output_file() {
    const char* dir = std::getenv("TMPDIR");
    std::string path = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/kvm_tests_serial_XXXXXX";
    int fd = ::mkstemp(path.data());
    REQUIRE(fd >= 0);
    ::close(fd);
    return path;
}

}  // namespace

GuestRun::GuestRun(const std::string& mode, unsigned cpus, uint64_t memory_mib)
    : GuestRun(mode, cpus, memory_mib, [](VmConfig&) {}, VmServices{}) {}

GuestRun::GuestRun(const std::string& mode, unsigned cpus, uint64_t memory_mib,
                   const std::function<void(VmConfig&)>& customize, VmServices services)
    : m_output_path(make_output_file()), m_future(m_promise.get_future()) {
    VmConfig config;
    config.cpus.boot = cpus;
    config.memory.size = memory_mib << 20;
    config.payload.kernel = TEST_GUEST_ELF;
    config.payload.cmdline = "testguest.mode=" + mode;
    config.serial.mode = ConsoleMode::file;
    config.serial.file = m_output_path;
    customize(config);
    auto vm = Vm::create(config, std::move(services));
    if (!vm) ::unlink(m_output_path.c_str());
    INFO("Vm::create: " << (vm ? std::string("ok") : vm.error().message()));
    REQUIRE(vm.has_value());
    m_vm = std::move(*vm);
}

GuestRun::~GuestRun() {
    if (m_thread.joinable()) {
        m_vm->request_exit(VmExitKind::poweroff, "test teardown");
        if (!m_result_taken && m_future.wait_for(30s) != std::future_status::ready) {
            std::fprintf(stderr, "HANG: Vm::run() did not return within 30 s of request_exit\n");
            std::fflush(stderr);
            std::_Exit(3);
        }
        m_thread.join();
    }
    ::unlink(m_output_path.c_str());
}

void GuestRun::start() {
    m_thread = std::thread([this] { m_promise.set_value(m_vm->run()); });
}

std::optional<Result<VmExitRequest>> GuestRun::wait_exit(std::chrono::milliseconds limit) {
    if (m_result_taken || m_future.wait_for(limit) != std::future_status::ready) return std::nullopt;
    m_result_taken = true;
    return m_future.get();
}

uint64_t GuestRun::counter() const {
    auto value = m_vm->memory().load<uint64_t>(memory::GuestAddress(kCounterAddr), std::memory_order_acquire);
    INFO("reading the counter: " << (value ? std::string("ok") : value.error().message()));
    REQUIRE(value.has_value());
    return *value;
}

bool GuestRun::wait_counter_above(uint64_t value, std::chrono::milliseconds limit) const {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (counter() <= value) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

std::string GuestRun::output() const {
    std::ifstream in(m_output_path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

bool GuestRun::wait_output(const std::string& text, std::chrono::milliseconds limit) const {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (output().find(text) == std::string::npos) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

}  // namespace vmm::test
