// main() of kvm_tests: these tests need a usable /dev/kvm. Without one the process
// says so and exits 77, which ctest reports as skipped (SKIP_RETURN_CODE 77): a
// missing /dev/kvm must never look like a pass. Listing (test discovery at build
// time) works without /dev/kvm.
#define CATCH_CONFIG_RUNNER
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int kSkipExitCode = 77;

// KVM_TESTS_KVM_DEVICE=/nonexistent exercises the skip path on a host with KVM.
const char* kvm_device() {
    const char* dev = std::getenv("KVM_TESTS_KVM_DEVICE");
    return dev != nullptr && *dev != '\0' ? dev : "/dev/kvm";
}

}  // namespace

int main(int argc, char* argv[]) {
    Catch::Session session;
    if (int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
    const Catch::ConfigData& cfg = session.configData();
    bool runs_tests = !(cfg.listTests || cfg.listTestNamesOnly || cfg.listTags || cfg.listReporters || cfg.showHelp);
    if (runs_tests) {
        int fd = ::open(kvm_device(), O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            std::printf("SKIPPED: /dev/kvm not available (%s: %s)\n", kvm_device(), std::strerror(errno));
            std::fflush(stdout);
            return kSkipExitCode;
        }
        ::close(fd);
    }
    return session.run();
}
