#include "fuzz_common.h"

#include <cstring>

#include "common/log.h"

namespace vmm::fuzz {

void quiet_logging() {
    const char* env = std::getenv("VMM_FUZZ_LOG");
    if (env != nullptr && std::strcmp(env, "1") == 0) {
        log::set_level(log::Level::debug);
        return;
    }
    // Kept open for the life of the process: the log keeps the FILE*.
    static std::FILE* null_sink = std::fopen("/dev/null", "w");
    if (null_sink != nullptr) log::set_sink(null_sink);
    log::set_level(log::Level::debug);
}

memory::GuestMemory make_memory(std::vector<memory::GuestRange> layout) {
    // No huge pages: each fresh 2 MiB page would be zeroed whole at first touch.
    memory::MappingOptions options;
    options.transparent_huge_pages = false;
    auto mem = memory::GuestMemory::create(layout, options);
    if (!mem) {
        std::fprintf(stderr, "fuzz harness: guest memory: %s\n", mem.error().message().c_str());
        std::abort();
    }
    return std::move(mem).value();
}

void check_failed(const char* expr, const char* file, int line, const char* detail) {
    std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s%s%s\n", file, line, expr,
                 detail ? ": " : "", detail ? detail : "");
    std::abort();
}

}  // namespace vmm::fuzz
