#include <catch2/catch.hpp>

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "balloon/auto/psi_source.h"

using namespace vmm::balloon::auto_balloon;
using std::chrono::microseconds;

namespace {

// A temporary file with PSI text, removed at the end of the test.
class TempPsiFile {
public:
    explicit TempPsiFile(const std::string& text) {
        std::string pattern = (std::filesystem::temp_directory_path() / "psi_source_test_XXXXXX").string();
        int fd = ::mkstemp(pattern.data());
        REQUIRE(fd >= 0);
        ::close(fd);
        m_path = pattern;
        write(text);
    }
    ~TempPsiFile() { std::filesystem::remove(m_path); }
    // Rewrites the file in place, as the kernel regenerates PSI text on each read.
    void write(const std::string& text) {
        std::ofstream out(m_path, std::ios::trunc);
        out << text;
    }
    const std::string& path() const { return m_path; }

private:
    std::string m_path;
};

const char* kCalm =
    "some avg10=0.12 avg60=0.05 avg300=0.01 total=37255\nfull avg10=0.04 avg60=0.01 avg300=0.00 "
    "total=11319\n";
const char* kBusy =
    "some avg10=23.76 avg60=8.75 avg300=6.77 total=34991929\nfull avg10=6.53 avg60=2.50 avg300=1.95 "
    "total=10089471\n";

}  // namespace

TEST_CASE("psi source: a plain file is read periodically and re-read each time", "[auto][psi]") {
    TempPsiFile file(kCalm);
    auto source = PsiSource::open(file.path(), PsiTrigger{});
    REQUIRE(source);
    // A trigger only exists on procfs and cgroup2; a plain file must not be written.
    CHECK(source->mode() == PsiSource::Mode::periodic);
    CHECK(source->poll_fd() == -1);
    CHECK(source->mode_reason().find("not a kernel PSI file") != std::string::npos);

    auto first = source->read();
    REQUIRE(first);
    CHECK(first->some.avg10 == Approx(0.12));
    file.write(kBusy);
    auto second = source->read();
    REQUIRE(second);
    CHECK(second->some.avg10 == Approx(23.76));
    CHECK(second->full->total_us == 10089471u);
    // The file's text was not touched by a trigger write.
    auto third = source->read();
    REQUIRE(third);
    CHECK(third->some.total_us == 34991929u);
    CHECK(source->on_event(POLLPRI) == PsiEvent::none);
}

TEST_CASE("psi source: without a trigger asked for", "[auto][psi]") {
    TempPsiFile file(kCalm);
    auto source = PsiSource::open(file.path(), std::nullopt);
    REQUIRE(source);
    CHECK(source->mode() == PsiSource::Mode::periodic);
    CHECK(source->path() == file.path());
}

TEST_CASE("psi source: errors", "[auto][psi]") {
    CHECK_FALSE(PsiSource::open("/nonexistent/pressure/memory", std::nullopt));
    TempPsiFile garbage("MemTotal: 16384 kB\n");
    auto bad = PsiSource::open(garbage.path(), std::nullopt);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message().find(garbage.path()) != std::string::npos);

    TempPsiFile file(kCalm);
    auto source = PsiSource::open(file.path(), std::nullopt);
    REQUIRE(source);
    file.write("truncated avg10=");
    CHECK_FALSE(source->read());
    file.write(std::string(4096, 'x'));
    CHECK_FALSE(source->read());
}

TEST_CASE("psi source: trigger settings outside the kernel's limits are errors", "[auto][psi]") {
    TempPsiFile file(kCalm);
    CHECK_FALSE(
        PsiSource::open(file.path(), PsiTrigger{false, microseconds(100'000), microseconds(400'000)}));
    CHECK_FALSE(
        PsiSource::open(file.path(), PsiTrigger{false, microseconds(100'000), microseconds(11'000'000)}));
    CHECK_FALSE(PsiSource::open(file.path(), PsiTrigger{false, microseconds(0), microseconds(2'000'000)}));
    CHECK_FALSE(
        PsiSource::open(file.path(), PsiTrigger{false, microseconds(3'000'000), microseconds(2'000'000)}));
    CHECK(validate_trigger(PsiTrigger{true, microseconds(500'000), microseconds(500'000)}));
}

TEST_CASE("psi source: the trigger text carries its NUL", "[auto][psi]") {
    std::string text = trigger_text(PsiTrigger{});
    CHECK(text == std::string("some 200000 2000000\0", 20));
    CHECK(trigger_text(PsiTrigger{true, microseconds(150'000), microseconds(1'000'000)}) ==
          std::string("full 150000 1000000\0", 20));
}

// The kernel's own file: a trigger where this process may register one (root, or a
// 2 s window on Linux 6.5+), periodic reading where it may not. Either way the
// source reads and says why.
TEST_CASE("psi source: /proc/pressure/memory", "[auto][psi]") {
    if (::access(kSystemMemoryPressure, R_OK) != 0) {
        WARN("no /proc/pressure/memory (kernel without PSI): skipped");
        return;
    }
    auto source = PsiSource::open(kSystemMemoryPressure, PsiTrigger{});
    REQUIRE(source);
    CHECK_FALSE(source->mode_reason().empty());
    REQUIRE(source->read());
    if (source->mode() == PsiSource::Mode::periodic) {
        WARN("trigger refused here: " << source->mode_reason());
        CHECK(source->poll_fd() == -1);
        return;
    }
    CHECK(source->mode_reason().find("registered") != std::string::npos);
    REQUIRE(source->poll_fd() >= 0);
    pollfd pfd{source->poll_fd(), POLLPRI, 0};
    REQUIRE(::poll(&pfd, 1, 0) >= 0);
    CHECK((pfd.revents & POLLERR) == 0);  // a registered trigger does not report an error
    CHECK(source->on_event(POLLPRI) == PsiEvent::pressure);
    CHECK(source->on_event(0) == PsiEvent::none);
    // What the kernel reports when the trigger goes away (its cgroup removed).
    CHECK(source->on_event(POLLERR | POLLPRI) == PsiEvent::trigger_lost);
    CHECK(source->mode() == PsiSource::Mode::periodic);
    CHECK(source->poll_fd() == -1);
    CHECK(source->read());  // still readable: now each tick
}

TEST_CASE("psi source: a window the kernel refuses falls back to periodic reading", "[auto][psi]") {
    if (::access(kSystemMemoryPressure, R_OK) != 0) return;
    // A 1 s window: refused without CAP_SYS_RESOURCE (EINVAL), accepted with it.
    auto source = PsiSource::open(kSystemMemoryPressure,
                                  PsiTrigger{false, microseconds(100'000), microseconds(1'000'000)});
    REQUIRE(source);
    if (source->mode() == PsiSource::Mode::periodic) {
        CHECK(source->mode_reason().find("some 100000 1000000") != std::string::npos);
    } else {
        CHECK(source->poll_fd() >= 0);
    }
    CHECK(source->read());
}

TEST_CASE("psi source: the VMM's own cgroup", "[auto][psi]") {
    auto path = own_cgroup_memory_pressure_path();
    if (!path) {
        WARN("no cgroup v2 here: " << path.error().message());
        return;
    }
    CHECK(path->ends_with("/memory.pressure"));
    if (::access(path->c_str(), R_OK) != 0) {
        WARN(*path << " is not readable (PSI off for cgroups?)");
        return;
    }
    auto source = PsiSource::open(*path, PsiTrigger{});
    REQUIRE(source);
    CHECK(source->read());
}
