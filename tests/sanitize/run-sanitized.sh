#!/usr/bin/env bash
# Sanitized builds of the test suite (docs/fuzzing.md), with clang 14:
#   tests/sanitize/run-sanitized.sh [--build-only|--test-only] asan|tsan [CTEST_ARGS...]
#   tests/sanitize/run-sanitized.sh asan [CTEST_ARGS...]
#       ASan + UBSan (-fno-sanitize-recover: any report fails) with VMM_FUZZ=ON; the
#       whole ctest suite except the Linux boots (-LE slow), fuzz smoke tests included.
#   tests/sanitize/run-sanitized.sh tsan [CTEST_ARGS...]
#       ThreadSanitizer over the concurrent parts: virtqueues and devices, both
#       balloons (with LLFree's concurrency test), the API request channel and server.
# --build-only / --test-only split the two halves: run-tests.sh builds both trees
# first and its ctest runs the test halves as the tests sanitized_suite_asan/_tsan.
# Both builds use -O1 -gline-tables-only (ASan's recommendation; stacks keep file and
# line) rather than -O2 -g: about a third less compile time on 2 cores.
# Environment: BUILD_DIR (default build-asan / build-tsan), JOBS (default nproc),
# GUEST_ARTIFACTS_DIR (optional; only the slow Linux boots need it),
# FUZZ_SMOKE_SECONDS (default 5). ccache is used when installed.
# Prints how long configure, build and tests took.
set -euo pipefail
cd "$(dirname "$0")/../.."

phase=all
case "${1:-}" in
    --build-only) phase=build; shift ;;
    --test-only) phase=test; shift ;;
esac
mode=${1:-asan}
shift || true
jobs=${JOBS:-$(nproc)}
case "$mode" in
    asan) build=${BUILD_DIR:-build-asan}; sanitize="address,undefined"; fuzz=ON ;;
    tsan) build=${BUILD_DIR:-build-tsan}; sanitize="thread"; fuzz=OFF ;;
    *) echo "usage: $0 asan|tsan [ctest args]" >&2; exit 2 ;;
esac

launcher=()
if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

# Reports fail the run; LSan is on by default with ASan. Symbolized stacks need
# llvm-symbolizer (package llvm-14).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
if [ -x /usr/bin/llvm-symbolizer-14 ]; then
    export ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-14 TSAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-14
fi

t0=$(date +%s)
if [ "$phase" = test ]; then
    [ -f "$build/CMakeCache.txt" ] || { echo "run-sanitized.sh: $build is not built (run with --build-only first)" >&2; exit 1; }
else
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Sanitize \
    -DCMAKE_C_FLAGS_SANITIZE="-O1 -gline-tables-only" -DCMAKE_CXX_FLAGS_SANITIZE="-O1 -gline-tables-only" \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 "${launcher[@]}" \
    -DVMM_SANITIZE="$sanitize" -DVMM_FUZZ=$fuzz \
    -DVMM_FUZZ_SMOKE_SECONDS="${FUZZ_SMOKE_SECONDS:-5}" \
    -DGUEST_ARTIFACTS_DIR="${GUEST_ARTIFACTS_DIR:-}" >/dev/null
fi
t1=$(date +%s)

# Tests that bound the VMM's RSS growth: ASan's quarantine (freed memory held back
# to catch use-after-free) grows RSS by design, so they run in a second pass
# without it.
rss_tests='^(virtio_hostile|hyperalloc_hostile|balloon_soak.*)$'

# The TSan build: the concurrent parts only: the executables of the devices
# (virtqueues and their users), the balloons, LLFree, the request channel and the
# API server, and the tests among them that run threads against each other.
tsan_targets=(unit_devices unit_balloon unit_llfree_tsan unit_vmm unit_api api_tests)
vmm_threads='requests reach the VMM thread|many API threads|does not answer|a closed channel'
vmm_threads+='|event loop|a handler may remove|modify to no events|first exit request'
tsan_tests="^(devices:|balloon:|llfree_tsan\$|vmm:.*($vmm_threads)|api:)"

if [ "$phase" != test ]; then
    if [ "$mode" = asan ]; then
        cmake --build "$build" -j "$jobs"
    else
        cmake --build "$build" -j "$jobs" --target "${tsan_targets[@]}"
    fi
fi
t2=$(date +%s)

status=0
if [ "$phase" != build ]; then
    if [ "$mode" = asan ]; then
        (cd "$build" && ctest --output-on-failure -j "$jobs" -LE slow -E "$rss_tests" "$@") || status=$?
        (cd "$build" && ASAN_OPTIONS=$ASAN_OPTIONS:quarantine_size_mb=0:thread_local_quarantine_size_kb=0 \
            ctest --output-on-failure -j "$jobs" -LE slow -R "$rss_tests" "$@") || status=$?
    else
        (cd "$build" && ctest --output-on-failure -j "$jobs" -R "$tsan_tests" "$@") || status=$?
    fi
fi
t3=$(date +%s)
echo "run-sanitized.sh $mode ($phase): configure $((t1 - t0)) s, build $((t2 - t1)) s, tests $((t3 - t2)) s" \
     "(total $((t3 - t0)) s, $jobs jobs, build dir $build)"
exit $status
