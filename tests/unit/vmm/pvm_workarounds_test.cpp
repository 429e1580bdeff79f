#include <catch2/catch.hpp>

#include <vector>

#include "vmm/pvm_workarounds.h"

using vmm::pvm::classify_emulation_failure;
using vmm::pvm::EmulationFix;

TEST_CASE("int3 is answered with a #BP injection, fwait is skipped", "[pvm]") {
    std::vector<uint8_t> int3{0xcc, 0x90};
    std::vector<uint8_t> fwait{0x9b};
    CHECK(classify_emulation_failure(int3) == EmulationFix::inject_breakpoint);
    CHECK(classify_emulation_failure(fwait) == EmulationFix::skip_instruction);
}

TEST_CASE("other emulation failures are real errors", "[pvm]") {
    std::vector<uint8_t> xrstor{0x0f, 0xae, 0x2f};
    std::vector<uint8_t> popcnt{0xf3, 0x0f, 0xb8, 0xc0};
    std::vector<uint8_t> none;
    CHECK(classify_emulation_failure(xrstor) == EmulationFix::none);
    CHECK(classify_emulation_failure(popcnt) == EmulationFix::none);
    CHECK(classify_emulation_failure(none) == EmulationFix::none);
}

TEST_CASE("the command-line additions disable the features the host cannot emulate", "[pvm]") {
    std::string add = vmm::pvm::cmdline_additions();
    CHECK(add.find("clearcpuid=") == 0);
    for (const char* feature : {"xsave", "popcnt", "smap", "smep", "avx2", "erms", "cx16"}) {
        INFO(feature);
        CHECK(add.find(feature) != std::string::npos);
    }
    CHECK(add.find(" nopv") != std::string::npos);
    CHECK(add.find(" rcupdate.rcu_cpu_stall_suppress=1") != std::string::npos);
}
