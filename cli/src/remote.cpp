// `vmm remote`: one command -> one HTTP request on the API socket (docs/api.md).
#include "cli/remote.h"

#include <array>
#include <iostream>
#include <optional>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/option_parser.h"

namespace vmm::cli {
namespace {

enum class Operand { none, size, device, id };  // resize-balloon SIZE, add-device PATH[,id=ID], remove-device ID

struct CommandSpec {
    std::string_view name;
    bool is_put;
    std::string_view path;
    Operand operand;
};

constexpr std::array kCommands{
    CommandSpec{"ping", false, "vmm.ping", Operand::none},
    CommandSpec{"info", false, "vm.info", Operand::none},
    CommandSpec{"counters", false, "vm.counters", Operand::none},
    CommandSpec{"balloon-statistics", false, "vm.balloon-statistics", Operand::none},
    CommandSpec{"pause", true, "vm.pause", Operand::none},
    CommandSpec{"resume", true, "vm.resume", Operand::none},
    CommandSpec{"shutdown", true, "vm.shutdown", Operand::none},
    CommandSpec{"shutdown-vmm", true, "vmm.shutdown", Operand::none},
    CommandSpec{"reboot", true, "vm.reboot", Operand::none},
    CommandSpec{"power-button", true, "vm.power-button", Operand::none},
    CommandSpec{"resize-balloon", true, "vm.resize-balloon", Operand::size},
    CommandSpec{"add-device", true, "vm.add-device", Operand::device},
    CommandSpec{"remove-device", true, "vm.remove-device", Operand::id},
};

const CommandSpec* find_command(std::string_view name) {
    for (const CommandSpec& spec : kCommands) {
        if (spec.name == name) return &spec;
    }
    return nullptr;
}

// "--api-socket PATH" and "--api-socket path=PATH" (the run flag's spelling) both work.
std::string socket_path_from(std::string_view value) {
    constexpr std::string_view kPrefix = "path=";
    if (value.starts_with(kPrefix)) value.remove_prefix(kPrefix.size());
    return std::string(value);
}

Result<RemoteRequest> build_request(const CommandSpec& spec, std::span<const std::string> operands,
                                    std::string socket_path) {
    size_t wanted = spec.operand == Operand::none ? 0 : 1;
    if (operands.size() != wanted) {
        return Error::msg("'{}' takes {} argument(s), got {}", spec.name, wanted, operands.size());
    }
    RemoteRequest request;
    request.socket_path = std::move(socket_path);
    request.is_put = spec.is_put;
    request.path = std::string(spec.path);
    if (spec.operand == Operand::size) {
        auto bytes = parse_size(operands[0]);
        if (!bytes) return bytes.error().context(fmt::format("{} '{}'", spec.name, operands[0]));
        request.body = nlohmann::json{{"size", *bytes}}.dump();
    } else if (spec.operand == Operand::device) {
        // The --device grammar: path=P[,id=I], or just the path.
        std::string_view v = operands[0];
        nlohmann::json body;
        if (!v.starts_with("path=")) {
            body["path"] = std::string(v);
        } else {
            OptionParser parser;
            parser.add("path").add("id");
            VMM_TRY_CTX(parser.parse(v), spec.name);
            body["path"] = VMM_TRY(parser.get_string("path")).value_or("");
            if (auto id = VMM_TRY(parser.get_string("id"))) body["id"] = *id;
        }
        request.body = body.dump();
    } else if (spec.operand == Operand::id) {
        request.body = nlohmann::json{{"id", operands[0]}}.dump();
    }
    return request;
}

std::string trim(std::string_view text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.remove_suffix(1);
    return std::string(text);
}

}  // namespace

Result<RemoteRequest> parse_remote_args(std::span<const std::string> args) {
    std::optional<std::string> socket_path;
    std::vector<std::string> words;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (arg == "-h" || arg == "--help") {
            RemoteRequest help;
            help.help = true;
            return help;
        }
        if (arg == "--api-socket") {
            if (i + 1 >= args.size()) return Error::msg("--api-socket needs a value (the socket path)");
            socket_path = socket_path_from(args[++i]);
        } else if (arg.starts_with("--api-socket=")) {
            socket_path = socket_path_from(std::string_view(arg).substr(13));
        } else if (arg.starts_with("-") && words.empty()) {
            return Error::msg("unknown option '{}'", arg);
        } else {
            words.push_back(arg);
        }
    }
    if (!socket_path || socket_path->empty()) return Error::msg("--api-socket PATH is required");
    if (words.empty()) return Error::msg("no command given");
    const CommandSpec* spec = find_command(words[0]);
    if (spec == nullptr) return Error::msg("unknown command '{}'", words[0]);
    return build_request(*spec, std::span<const std::string>(words).subspan(1), std::move(*socket_path));
}

RemoteOutcome remote_outcome(const api::HttpResponse& response) {
    RemoteOutcome outcome;
    nlohmann::json body = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
    if (response.status >= 200 && response.status < 300) {
        if (response.body.empty()) return outcome;
        // A non-JSON success body is passed through as it came.
        outcome.out = (body.is_discarded() ? trim(response.body) : body.dump(2)) + "\n";
        return outcome;
    }
    outcome.exit_code = kRemoteExitFailed;
    std::string message;
    if (body.is_object() && body.contains("error") && body["error"].is_string()) {
        message = body["error"].get<std::string>();
    } else {
        message = response.body.empty() ? "(no message)" : trim(response.body);
    }
    outcome.err = fmt::format("vmm remote: {} {}\n", response.status, message);
    return outcome;
}

std::string remote_help_text() {
    return "Usage: vmm remote --api-socket PATH COMMAND [ARGS]\n"
           "Sends one request to a running VMM's REST API (vmm --api-socket path=PATH).\n\n"
           "Commands:\n"
           "  ping                  GET  /api/v1/vmm.ping\n"
           "  info                  GET  /api/v1/vm.info\n"
           "  counters              GET  /api/v1/vm.counters\n"
           "  balloon-statistics    GET  /api/v1/vm.balloon-statistics\n"
           "  pause                 PUT  /api/v1/vm.pause\n"
           "  resume                PUT  /api/v1/vm.resume\n"
           "  shutdown              PUT  /api/v1/vm.shutdown (the VMM keeps serving the API)\n"
           "  shutdown-vmm          PUT  /api/v1/vmm.shutdown (the VMM process exits)\n"
           "  reboot                PUT  /api/v1/vm.reboot\n"
           "  power-button          PUT  /api/v1/vm.power-button (Ctrl-Alt-Del)\n"
           "  resize-balloon SIZE   PUT  /api/v1/vm.resize-balloon, SIZE in bytes or with K/M/G/T\n"
           "  add-device PATH[,id=ID]  PUT /api/v1/vm.add-device (VFIO; PATH or path=PATH,id=ID)\n"
           "  remove-device ID      PUT  /api/v1/vm.remove-device\n\n"
           "A JSON reply is printed pretty; a 204 prints nothing.\n"
           "Exit status: 0 success, 1 error reply or VMM unreachable (message on stderr), 2 usage error.\n";
}

int run_remote(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
    auto request = parse_remote_args(args);
    if (!request) {
        err << "vmm remote: " << request.error().message() << "\nTry 'vmm remote --help' for more information.\n";
        return kRemoteExitUsage;
    }
    if (request->help) {
        out << remote_help_text();
        return kRemoteExitOk;
    }
    api::ApiClient client(request->socket_path);
    auto response = request->is_put ? client.put(request->path, request->body) : client.get(request->path);
    if (!response) {
        err << "vmm remote: " << response.error().message() << "\n";
        return kRemoteExitFailed;
    }
    RemoteOutcome outcome = remote_outcome(*response);
    out << outcome.out;
    err << outcome.err;
    return outcome.exit_code;
}

int run_remote(std::span<const std::string> args) {
    int status = run_remote(args, std::cout, std::cerr);
    std::cout.flush();
    return status;
}

}  // namespace vmm::cli
