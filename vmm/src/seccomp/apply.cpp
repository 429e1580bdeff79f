// Turns a thread kind's rules (rules.cpp) into a libseccomp filter and loads it on
// the calling thread.
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>

#include "common/log.h"
#include "rules.h"
#include "vmm/seccomp.h"

namespace vmm {
namespace {

namespace sr = seccomp_rules;

struct FilterDeleter {
    void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Filter = std::unique_ptr<void, FilterDeleter>;  // scmp_filter_ctx is a void*

// libseccomp returns -errno.
Error seccomp_error(int rc, std::string_view what) {
    return Error(fmt::format("{}: {}", what, std::strerror(-rc)), -rc);
}

std::string syscall_name(int nr) {
    char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    if (name == nullptr) return fmt::format("syscall {}", nr);
    std::string out(name);
    std::free(name);
    return out;
}

std::string describe(const sr::Rule& rule) {
    std::string out = syscall_name(rule.syscall);
    if (!rule.args.empty()) {
        out += "(";
        for (size_t i = 0; i < rule.args.size(); ++i) {
            const scmp_arg_cmp& c = rule.args[i];
            // Only MASKED_EQ is used (rules.cpp).
            out += fmt::format("{}arg{} & {:#x} == {:#x}", i == 0 ? "" : ", ", c.arg, c.datum_a, c.datum_b);
        }
        out += ")";
    }
    if (rule.error != 0) out += fmt::format(" -> {}", strerrorname_np(rule.error));
    return out;
}

Result<Filter> build(ThreadKind kind, SeccompMode mode) {
    // on: the whole process dies of SIGSYS, not only the offending thread (a dead
    // vCPU or worker thread would leave a VM that hangs instead of failing).
    uint32_t deny = mode == SeccompMode::log || !kSeccompViolationsKill ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
    Filter filter(seccomp_init(deny));
    if (!filter) return Error::msg("seccomp_init failed (out of memory, or no seccomp support in libseccomp)");
    // Another architecture's syscall ABI (int 0x80, x32) is never legitimate here.
    if (int rc = seccomp_attr_set(filter.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc < 0) {
        return seccomp_error(rc, "seccomp: setting the bad-architecture action");
    }
    // apply_seccomp sets NO_NEW_PRIVS itself, with its own error message.
    if (int rc = seccomp_attr_set(filter.get(), SCMP_FLTATR_CTL_NNP, 0); rc < 0) {
        return seccomp_error(rc, "seccomp: clearing the NNP attribute");
    }
    // A binary tree instead of a linear list: every syscall of every filtered
    // thread (each KVM_RUN, each eventfd write) goes through it.
    if (int rc = seccomp_attr_set(filter.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2); rc < 0) {
        return seccomp_error(rc, "seccomp: choosing the binary-tree layout");
    }
    for (const sr::Rule& rule : sr::rules_for(kind)) {
        if (rule.enforcing_only && mode != SeccompMode::on) continue;  // log: allowed and logged
        uint32_t action = rule.error != 0 ? SCMP_ACT_ERRNO(static_cast<uint32_t>(rule.error)) : SCMP_ACT_ALLOW;
        int rc = seccomp_rule_add_array(filter.get(), action, rule.syscall, static_cast<unsigned>(rule.args.size()),
                                        rule.args.data());
        if (rc < 0) return seccomp_error(rc, fmt::format("seccomp: adding the rule {}", describe(rule)));
    }
    return filter;
}

// glibc's malloc looks up the number of CPUs (an open of
// /sys/devices/system/cpu/online) the first time a thread needs a 9th arena,
// lazily, from whichever thread that is: under a filter without openat that kills
// the VMM. Fixing the limit up front (to glibc's own default, 8 per CPU) while
// this thread is still unfiltered means that lookup never happens.
void pin_malloc_arena_limit() {
    static std::once_flag once;
    std::call_once(once, [] { (void)::mallopt(M_ARENA_MAX, 8 * std::max(1, ::get_nprocs())); });
}

}  // namespace

const char* to_string(ThreadKind kind) {
    switch (kind) {
        case ThreadKind::vmm: return "vmm";
        case ThreadKind::vcpu: return "vcpu";
        case ThreadKind::device_worker: return "device_worker";
        case ThreadKind::api_accept: return "api_accept";
        case ThreadKind::api_connection: return "api_connection";
    }
    return "?";
}

Result<void> apply_seccomp(ThreadKind kind, SeccompMode mode) {
    if (mode == SeccompMode::off) return ok();
    auto context = [kind](std::string_view what) {
        return fmt::format("cannot install the seccomp filter of the {} thread: {}", to_string(kind), what);
    };
    pin_malloc_arena_limit();
    if (!kSeccompViolationsKill && mode == SeccompMode::on) {
        static std::once_flag once;
        std::call_once(once, [] { log::warn("seccomp: sanitized build, forbidden syscalls are logged, not fatal"); });
    }
    Filter filter = VMM_TRY_CTX(build(kind, mode), context("building it"));
    // Required for an unprivileged filter, and keeps a setuid exec from widening it.
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Error::from_errno(context("PR_SET_NO_NEW_PRIVS"));
    if (int rc = seccomp_load(filter.get()); rc < 0) return seccomp_error(rc, context("loading it"));
    return ok();
}

std::vector<std::string> seccomp_rule_descriptions(ThreadKind kind) {
    std::vector<std::string> out;
    for (const sr::Rule& rule : sr::rules_for(kind)) out.push_back(describe(rule));
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace vmm
