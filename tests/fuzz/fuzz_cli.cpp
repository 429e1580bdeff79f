// The command line (cli/): argv from the input through parse_command_line, and
// every argument on its own through the option-value parser and each device
// flag's parser, as a user (or a script building a command line from untrusted
// names) could pass them. Checks that an accepted command line satisfies the
// limits the CLI promises (vCPUs, memory size and alignment, balloon below RAM).
//
// Input: u8 mode (bit0: three arguments from index mode >> 3 through every value
// parser; bits 1-2: help and version texts), u32 RAM for parse_balloon (4 KiB
// units), then arguments separated by NUL bytes.
#include <string>
#include <string_view>
#include <vector>

#include "cli/command_line.h"
#include "cli/device_options.h"
#include "cli/option_parser.h"
#include "support/fuzz_common.h"
#include "support/fuzz_input.h"

using namespace vmm;
using namespace vmm::cli;

namespace {

void check_run_options(const RunOptions& run) {
    const VmConfig& vm = run.vm;
    FUZZ_CHECK(!vm.payload.kernel.empty());
    FUZZ_CHECK(vm.cpus.boot >= 1 && vm.cpus.boot <= kMaxBootCpus);
    FUZZ_CHECK(vm.memory.size >= kMinMemorySize && vm.memory.size <= kMaxMemorySize);
    FUZZ_CHECK(vm.memory.size % kMemoryAlignment == 0);
    if (vm.balloon) FUZZ_CHECK(vm.balloon->size < vm.memory.size);
    for (const DiskConfig& d : vm.disks) FUZZ_CHECK(!d.path.empty());
    for (const NetConfig& n : vm.nets) FUZZ_CHECK(!n.tap.empty() && n.tap.size() <= 15);
    FUZZ_CHECK(run.verbosity >= 0);
}

// One value string through every parser that takes one.
void parse_value(std::string_view value, uint64_t ram) {
    OptionParser parser;
    parser.add("size").add("path").add("id").add_valueless("tty");
    if (parser.parse(value)) {
        (void)parser.get_size("size");
        (void)parser.get_u64("size");
        (void)parser.get_bool("path");
        (void)parser.get_string("id");
        (void)parser.get_string("tty");  // valueless: an error, not a crash
        (void)parser.is_set("tty");
        (void)parser.get_string("unregistered");
    }
    (void)parse_disk(value);
    (void)parse_net(value);
    (void)parse_rng(value);
    (void)parse_console(value);
    if (auto b = parse_balloon(value, ram)) FUZZ_CHECK(b->size < ram);
    if (auto n = parse_size(value)) (void)format_size(*n);
    (void)parse_u64(value);
    (void)parse_toggle(value);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    vmm::fuzz::FuzzInput in(data, size);
    uint8_t mode = in.u8();
    // RAM for parse_balloon: any size the CLI itself would accept, in 4 KiB units.
    uint64_t ram = kMinMemorySize + (uint64_t{in.u32()} << 12) % (kMaxMemorySize - kMinMemorySize);
    std::string_view rest = in.chars(in.remaining());

    std::vector<std::string> args;
    for (size_t start = 0; start <= rest.size() && args.size() < 64;) {
        size_t end = rest.find('\0', start);
        if (end == std::string_view::npos) end = rest.size();
        args.emplace_back(rest.substr(start, end - start));
        start = end + 1;
    }
    if (rest.empty()) args.clear();

    auto command = parse_command_line(args);
    if (command && command->kind == CliCommand::Kind::run) check_run_options(command->run);
    if (!command) FUZZ_CHECK(!command.error().message().empty());
    if (mode & 1) {
        // A few of the arguments (each goes through every parser, which is slow).
        size_t first = (mode >> 3) % (args.size() + 1);
        for (size_t i = first; i < args.size() && i < first + 3; ++i) parse_value(args[i], ram);
    }
    if ((mode & 6) == 6) {
        (void)help_text();
        (void)version_text();
    }
    return 0;
}
