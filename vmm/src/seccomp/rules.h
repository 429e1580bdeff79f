// The allow lists behind vmm/seccomp.h, as data: what each thread kind may call,
// and with which arguments. apply.cpp turns them into a libseccomp filter.
#pragma once

#include <seccomp.h>

#include <vector>

#include "vmm/seccomp.h"

namespace vmm::seccomp_rules {

struct Rule {
    int syscall;                    // SCMP_SYS(name)
    std::vector<scmp_arg_cmp> args;  // all must hold; empty: any arguments
    int error = 0;                  // not 0: fail with this errno instead of allowing
    bool enforcing_only = false;    // with `error`: only in SeccompMode::on (log allows, logged)
};

// The rules of `kind`, normalized: one entry per (syscall, conditions, error), and
// a syscall allowed without conditions carries no other rules besides.
std::vector<Rule> rules_for(ThreadKind kind);

}  // namespace vmm::seccomp_rules
