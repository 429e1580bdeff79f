#!/usr/bin/env bash
# Runs a vmm command line and checks what it printed and how it ended.
#
#   check_run.sh [--kvm] [--stop-when-seen] <timeout_s> <expected_exit|!0> <pattern>... -- <command>...
#
# --kvm             the command needs /dev/kvm: without it, print "SKIPPED" and exit 77
#                   (ctest's SKIP_RETURN_CODE), so the run reports a skip, never a pass.
# --stop-when-seen  stop the command as soon as every pattern has appeared (for boots
#                   that would take long to finish, e.g. a bzImage here); the exit code
#                   is then not checked.
# --type-after P T once pattern P has appeared, type the line T on the command's
#                   stdin (the guest's keyboard); stdin stays open until the end.
# Every <pattern> (grep -E) must appear in stdout+stderr, in any order.
set -u
needs_kvm=0
stop_when_seen=0
type_pattern=""
type_text=""
while [ $# -gt 0 ]; do
    case "$1" in
        --kvm) needs_kvm=1; shift ;;
        --stop-when-seen) stop_when_seen=1; shift ;;
        --type-after) type_pattern=$2; type_text=$3; shift 3 ;;
        *) break ;;
    esac
done
timeout_s=$1 expected=$2
shift 2
patterns=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do patterns+=("$1"); shift; done
shift

if [ $needs_kvm -eq 1 ] && ! { [ -c /dev/kvm ] && ( exec 3<>/dev/kvm ) 2>/dev/null; }; then
    echo "SKIPPED: /dev/kvm not available"
    exit 77
fi

log=$(mktemp "${TMPDIR:-/tmp}/check_run.XXXXXX")
fifo="$log.stdin"
trap 'rm -f "$log" "$fifo"' EXIT
all_seen() {
    local p
    for p in "${patterns[@]}"; do grep -qE -- "$p" "$log" || return 1; done
    return 0
}

echo "check_run: $* (timeout ${timeout_s}s)"
start=$SECONDS
if [ -n "$type_pattern" ]; then
    mkfifo "$fifo"
    "$@" <"$fifo" >"$log" 2>&1 &
    pid=$!
    exec 3>"$fifo"
else
    "$@" </dev/null >"$log" 2>&1 &
    pid=$!
fi
rc=""
typed=0
while kill -0 "$pid" 2>/dev/null; do
    if [ -n "$type_pattern" ] && [ $typed -eq 0 ] && grep -qE -- "$type_pattern" "$log"; then
        printf '%s\n' "$type_text" >&3
        typed=1
    fi
    if [ $stop_when_seen -eq 1 ] && all_seen; then
        kill "$pid"; wait "$pid" 2>/dev/null; rc=stopped; break
    fi
    if [ $((SECONDS - start)) -ge "$timeout_s" ]; then
        kill -9 "$pid"; wait "$pid" 2>/dev/null; rc=timeout; break
    fi
    sleep 0.2
done
if [ -z "$rc" ]; then wait "$pid"; rc=$?; fi
cat "$log"
echo "check_run: ended ($rc) after $((SECONDS - start)) s"

fail=0
if [ "$rc" = timeout ]; then
    echo "check_run: FAIL: timed out after ${timeout_s}s"; fail=1
elif [ "$rc" != stopped ]; then
    if [ "$expected" = "!0" ] && [ "$rc" -eq 0 ]; then echo "check_run: FAIL: expected failure, got exit 0"; fail=1; fi
    if [ "$expected" != "!0" ] && [ "$rc" -ne "$expected" ]; then
        echo "check_run: FAIL: expected exit $expected, got $rc"; fail=1
    fi
fi
for p in "${patterns[@]}"; do
    if ! grep -qE -- "$p" "$log"; then echo "check_run: FAIL: missing pattern: $p"; fail=1; fi
done
[ $fail -eq 0 ] && echo "check_run: PASS"
exit $fail
