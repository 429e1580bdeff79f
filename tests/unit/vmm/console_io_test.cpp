#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "vmm/console_io.h"

TEST_CASE("a file console truncates the file and writes guest output to it", "[console]") {
    char path[] = "/tmp/vmm-console-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    REQUIRE(::write(::open(path, O_WRONLY), "old contents", 12) == 12);  // truncated on open
    {
        vmm::ConsoleConfig config{vmm::ConsoleMode::file, path};
        auto sink = vmm::make_console_sink(config);
        REQUIRE(sink);
        std::string text = "hello\n";
        (*sink)(std::as_bytes(std::span(text)));
    }
    std::ifstream in(path);
    std::stringstream got;
    got << in.rdbuf();
    CHECK(got.str() == "hello\n");
    ::unlink(path);
}

TEST_CASE("a console file that cannot be created is a clear error", "[console]") {
    vmm::ConsoleConfig config{vmm::ConsoleMode::file, "/nonexistent-dir/console.log"};
    auto sink = vmm::make_console_sink(config);
    REQUIRE_FALSE(sink);
    CHECK(sink.error().message().find("/nonexistent-dir/console.log") != std::string::npos);
}
