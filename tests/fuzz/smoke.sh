#!/usr/bin/env bash
# One fuzz target's ctest smoke run: every seed of its corpus, then SECONDS of
# fuzzing. New inputs go to WORK (never into the repository's corpus); a crash,
# leak, sanitizer report or FUZZ_CHECK failure leaves its input in WORK/artifacts
# and fails the test.
#   smoke.sh BINARY CORPUS_DIR WORK_DIR SECONDS [DICT]
set -euo pipefail
bin=$1 corpus=$2 work=$3 seconds=$4 dict=${5:-}

rm -rf "$work"
mkdir -p "$work/new" "$work/artifacts"
args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1
      -artifact_prefix="$work/artifacts/")
[ -n "$dict" ] && args+=(-dict="$dict")
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if ! "$bin" "${args[@]}" "$work/new" "$corpus" >"$work/log" 2>&1; then
    tail -n 60 "$work/log"
    echo "smoke.sh: $(basename "$bin") failed; artifacts in $work/artifacts:" >&2
    ls -l "$work/artifacts" >&2
    exit 1
fi
grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)' "$work/log" || true
