#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs packages, builds
# (or takes from the cache) the guest kernel, builds the VMM three times and runs
# one ctest over all of it:
#   - the regular GCC build (RelWithDebInfo): every test, the Linux boots included;
#   - an ASan+UBSan build with clang 14 and the libFuzzer targets: every test except
#     the Linux boots, plus a short run of each fuzz target (ctest sanitized_suite_asan);
#   - a TSan build of the concurrent parts: queues, devices, balloons, LLFree, the
#     request channel and the API server (ctest sanitized_suite_tsan).
#   ./run-tests.sh               everything, as CI runs it
#   ./run-tests.sh -L unit       extra arguments go to ctest; the sanitized trees are
#                                then neither built nor run (VMM_SANITIZED=1 forces them)
# Compiler output is cached by ccache in ~/.cache/ccache (keyed by a hash of each
# compilation's inputs), the guest kernel in ~/.cache/vmm-guest.
set -euo pipefail
cd "$(dirname "$0")"
# Compiler cache hits across clones in different folders: paths made relative, the
# working directory left out of the hash (it only names the compile directory in the
# debug info), and the precompiled Catch2 header cacheable.
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}

./install-deps.sh

# The guest kernel, vmlinux, bzImage and initramfs; cached under a hash of its inputs.
guest_dir=$(guest-kernel-config/build-guest.sh | tail -n 1)

launcher=()
if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

build=${BUILD_DIR:-build}
sanitized=${VMM_SANITIZED:-$([ $# -eq 0 ] && echo 1 || echo 0)}
asan_dir="" tsan_dir=""
if [ "$sanitized" = 1 ]; then
    asan_dir=$(realpath -m "$build-asan") tsan_dir=$(realpath -m "$build-tsan")
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGUEST_ARTIFACTS_DIR="$guest_dir" "${launcher[@]}" \
    -DVMM_ASAN_BUILD_DIR="$asan_dir" -DVMM_TSAN_BUILD_DIR="$tsan_dir"
cmake --build "$build" -j "$(nproc)"
if [ "$sanitized" = 1 ]; then
    BUILD_DIR=$asan_dir tests/sanitize/run-sanitized.sh --build-only asan
    BUILD_DIR=$tsan_dir tests/sanitize/run-sanitized.sh --build-only tsan
fi

cd "$build"
# Linux boot tests take minutes on hosts without hardware virtualization; they run
# alongside the fast tests and carry their own generous timeouts.
exec ctest --output-on-failure -j 2 "$@"
