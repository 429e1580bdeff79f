// vmm: boots a Linux (or test) guest on KVM. The CLI edge: argument errors and
// set-up errors become a one-line message and a non-zero exit status.
#include <cstdio>
#include <string>
#include <vector>

#include "api/api_server.h"
#include "cli/command_line.h"
#include "cli/remote.h"
#include "common/log.h"
#include "vmm/console_io.h"
#include "vmm/vmm_runner.h"

namespace {

constexpr int kExitUsage = 2;    // bad command line
constexpr int kExitFailure = 1;  // set-up failed, or the guest failed (triple fault, KVM error)

vmm::log::Level level_for(int verbosity) {
    if (verbosity <= 0) return vmm::log::Level::warn;
    if (verbosity == 1) return vmm::log::Level::info;
    return vmm::log::Level::debug;
}

int run(const vmm::cli::RunOptions& options) {
    std::FILE* log_file = nullptr;
    if (options.log_file) {
        log_file = std::fopen(options.log_file->c_str(), "a");
        if (log_file == nullptr) {
            std::fprintf(stderr, "vmm: cannot open log file '%s'\n", options.log_file->c_str());
            return kExitFailure;
        }
        vmm::log::set_sink(log_file);
    }
    vmm::log::set_level(level_for(options.verbosity));

    std::shared_ptr<vmm::RequestChannel> requests;
    std::unique_ptr<vmm::api::ApiServer> server;
    if (options.api_socket) {
        auto channel = vmm::RequestChannel::create();
        if (!channel) {
            std::fprintf(stderr, "vmm: %s\n", channel.error().message().c_str());
            return kExitFailure;
        }
        requests = *channel;
        vmm::api::ApiServerOptions server_options;
        server_options.socket_path = *options.api_socket;
        server_options.seccomp = options.vm.seccomp;
        auto started = vmm::api::ApiServer::start(server_options, requests);
        if (!started) {
            std::fprintf(stderr, "vmm: --api-socket: %s\n", started.error().message().c_str());
            return kExitFailure;
        }
        server = std::move(*started);
    }

    vmm::Result<int> status = vmm::Error("not run");
    {
        // Raw mode only while the guest owns the terminal.
        std::optional<vmm::TerminalRawMode> raw;
        if (options.vm.serial.mode == vmm::ConsoleMode::tty || options.vm.console.mode == vmm::ConsoleMode::tty) {
            raw.emplace();
        }
        status = vmm::run_vmm(options.vm, requests);
    }
    if (requests) requests->close();
    server.reset();
    if (log_file != nullptr) {
        vmm::log::set_sink(nullptr);
        std::fclose(log_file);
    }
    if (!status) {
        std::fprintf(stderr, "vmm: %s\n", status.error().message().c_str());
        return kExitFailure;
    }
    return *status;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty() && args[0] == "remote") {
        return vmm::cli::run_remote(std::span<const std::string>(args).subspan(1));
    }
    auto command = vmm::cli::parse_command_line(args);
    if (!command) {
        std::fprintf(stderr, "vmm: %s\nTry 'vmm --help' for more information.\n", command.error().message().c_str());
        return kExitUsage;
    }
    switch (command->kind) {
        case vmm::cli::CliCommand::Kind::help: std::fputs(vmm::cli::help_text().c_str(), stdout); return 0;
        case vmm::cli::CliCommand::Kind::version: std::fputs(vmm::cli::version_text().c_str(), stdout); return 0;
        case vmm::cli::CliCommand::Kind::run: break;
    }
    try {
        return run(command->run);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "vmm: internal error: %s\n", e.what());
        return kExitFailure;
    }
}
