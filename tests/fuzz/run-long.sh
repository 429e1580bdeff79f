#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after another,
# from its seed corpus, and writes a summary: executions, corpus growth, coverage,
# and crashes per target (docs/fuzzing.md).
#   tests/fuzz/run-long.sh SECONDS [TARGET...]
# Environment: BUILD_DIR (default build-asan: tests/sanitize/run-sanitized.sh asan
# builds it), WORK_DIR (default $BUILD_DIR/fuzz-long), FUZZ_FORKS (default 1:
# libFuzzer -fork=N runs N jobs and keeps going after a crash).
# New corpus entries land in WORK_DIR/<target>/corpus (merge the interesting ones
# into tests/fuzz/corpus/<target> with -merge=1), crashes in WORK_DIR/<target>/artifacts.
# Exit status 1 when any target crashed.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:?usage: $0 SECONDS [TARGET...]}
shift
build=${BUILD_DIR:-build-asan}
work=${WORK_DIR:-$build/fuzz-long}
forks=${FUZZ_FORKS:-1}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for d in tests/fuzz/corpus/fuzz_*/; do targets+=("$(basename "$d")"); done
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

mkdir -p "$work"
summary=$work/summary.md
{
    echo "| target | seconds | executions | exec/s | corpus (seeds -> now) | coverage (cov/ft) | crashes |"
    echo "|---|---|---|---|---|---|---|"
} >"$summary"
failed=0
for t in "${targets[@]}"; do
    bin=$build/tests/fuzz/$t
    [ -x "$bin" ] || { echo "run-long.sh: $bin not built (VMM_FUZZ=ON)" >&2; exit 2; }
    dir=$work/$t
    mkdir -p "$dir/corpus" "$dir/artifacts"
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
          -artifact_prefix="$dir/artifacts/")
    [ -f "tests/fuzz/dict/$t.dict" ] && args+=(-dict="tests/fuzz/dict/$t.dict")
    [ "$forks" -gt 1 ] && args+=(-fork="$forks" -ignore_crashes=1)
    seeds=$(find "tests/fuzz/corpus/$t" -type f | wc -l)
    echo "== $t: ${seconds}s"
    start=$(date +%s)
    "$bin" "${args[@]}" "$dir/corpus" "tests/fuzz/corpus/$t" >"$dir/log" 2>&1 || true
    elapsed=$(( $(date +%s) - start ))
    execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$dir/log" | tail -1 | awk '{print $2}' || true)
    # Fork mode prints no final stats: the last status line's count instead.
    [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$dir/log" | tail -1 | tr -d '#' || true)
    execs=${execs:-0}
    last=$(grep -E '^#[0-9]+.*(cov|ft):' "$dir/log" | tail -1 || true)
    cov=$(echo "$last" | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+' || echo "?")
    ft=$(echo "$last" | grep -oE 'ft: [0-9]+' | grep -oE '[0-9]+' || echo "?")
    corpus=$(( $(find "$dir/corpus" -type f | wc -l) + seeds ))
    crashes=$(find "$dir/artifacts" -type f | wc -l)
    [ "$crashes" -gt 0 ] && failed=1
    rate=$(( execs / (elapsed > 0 ? elapsed : 1) ))
    echo "| $t | $elapsed | $execs | $rate | $seeds -> $corpus | $cov/$ft | $crashes |" >>"$summary"
done
echo
cat "$summary"
echo "(summary: $summary; logs and crashes: $work/<target>/)"
exit $failed
