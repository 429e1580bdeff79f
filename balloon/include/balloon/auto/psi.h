// Pressure stall information (Documentation/accounting/psi.rst): the text of
// /proc/pressure/memory or of a cgroup v2 memory.pressure file, parsed. Pure: no I/O
// here (psi_source.h reads the files). Also the pure halves of finding the VMM's own
// cgroup v2 directory, so that the caller can watch its memory.pressure instead of
// the whole host's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace vmm::balloon::auto_balloon {

// One line: "some avg10=1.53 avg60=0.87 avg300=0.26 total=46735192". The averages
// are the percentage of wall time (0..100) in which tasks stalled on memory over
// the last 10 s, 60 s and 300 s; total is the cumulative stall time in µs.
struct PsiLine {
    double avg10 = 0;
    double avg60 = 0;
    double avg300 = 0;
    uint64_t total_us = 0;
};

// "some": at least one task stalled; "full": every non-idle task stalled at once.
// "full" is absent from files where the kernel does not report it (the CPU file of
// kernels before 5.13), so a memory sample without it is accepted too.
struct PsiSample {
    PsiLine some;
    std::optional<PsiLine> full;
};

// Parses the file's text. Lines may come in either order but each at most once;
// "some" is required; averages must lie in 0..100; anything else is an error.
[[nodiscard]] Result<PsiSample> parse_psi(std::string_view text);

// The cgroup v2 path of this process from the text of /proc/self/cgroup: the path
// of the "0::" line (e.g. "/system.slice/vmm.service"). Error on a v1-only host.
[[nodiscard]] Result<std::string> parse_cgroup_v2_path(std::string_view proc_self_cgroup);

// Where the cgroup v2 hierarchy is mounted, from the text of /proc/self/mountinfo
// (mount point of the first "cgroup2" entry, and the hierarchy path it shows as
// its root, "/" unless the mount is of a subtree).
struct Cgroup2Mount {
    std::string mount_point;
    std::string root;
};
[[nodiscard]] Result<Cgroup2Mount> find_cgroup2_mount(std::string_view mountinfo);

// The memory.pressure file of `cgroup_path` under `mount` (error when the cgroup
// lies outside the mounted subtree).
[[nodiscard]] Result<std::string> cgroup_memory_pressure_path(const Cgroup2Mount& mount,
                                                              std::string_view cgroup_path);

}  // namespace vmm::balloon::auto_balloon
