// Shared by every fuzz target: quiet logging and invariant checks that crash (so
// libFuzzer records the input) instead of returning.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "memory/guest_memory.h"

namespace vmm::fuzz {

// Log messages still get formatted (that code runs too) but go to /dev/null, at
// debug level; VMM_FUZZ_LOG=1 sends them to stderr instead, for debugging a crash.
void quiet_logging();

// Guest memory for a harness; aborts when it cannot be created (a harness bug).
memory::GuestMemory make_memory(std::vector<memory::GuestRange> layout);

[[noreturn]] void check_failed(const char* expr, const char* file, int line, const char* detail);

}  // namespace vmm::fuzz

// An invariant of the code under test: violated means a bug, so crash loudly.
#define FUZZ_CHECK(cond) \
    ((cond) ? void(0) : ::vmm::fuzz::check_failed(#cond, __FILE__, __LINE__, nullptr))
#define FUZZ_CHECK_MSG(cond, detail) \
    ((cond) ? void(0) : ::vmm::fuzz::check_failed(#cond, __FILE__, __LINE__, (detail)))
