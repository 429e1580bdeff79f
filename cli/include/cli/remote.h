// `vmm remote --api-socket PATH COMMAND [ARGS]`: a client for a running VMM's REST
// API (docs/api.md). Each command is one HTTP request; a JSON reply is printed
// pretty, a 204 prints nothing. Exit status: 0 on 2xx, 1 on an HTTP error or when
// the VMM cannot be reached ("vmm remote: <status> <message>" on stderr), 2 on a
// usage error.
#pragma once

#include <iosfwd>
#include <span>
#include <string>

#include "api/api_client.h"
#include "common/result.h"

namespace vmm::cli {

inline constexpr int kRemoteExitOk = 0;
inline constexpr int kRemoteExitFailed = 1;
inline constexpr int kRemoteExitUsage = 2;

// One parsed invocation: which request to send where.
struct RemoteRequest {
    bool help = false;            // --help: print remote_help_text(), nothing else
    std::string socket_path;
    bool is_put = false;          // else GET
    std::string path;             // relative to /api/v1, e.g. "vm.info"
    std::string body;             // JSON body of a PUT; empty for none
};

// `args` are the words after "remote". Errors are usage errors (exit 2).
[[nodiscard]] Result<RemoteRequest> parse_remote_args(std::span<const std::string> args);

// What to print for a reply, and the exit status.
struct RemoteOutcome {
    int exit_code = kRemoteExitOk;
    std::string out;  // stdout: pretty JSON plus a newline, or empty
    std::string err;  // stderr: "vmm remote: <status> <message>\n", or empty
};
RemoteOutcome remote_outcome(const api::HttpResponse& response);

std::string remote_help_text();

// The whole command, printing to out/err; returns the exit status.
int run_remote(std::span<const std::string> args, std::ostream& out, std::ostream& err);
// As above on stdout/stderr (called from main when argv[1] == "remote").
int run_remote(std::span<const std::string> args);

}  // namespace vmm::cli
