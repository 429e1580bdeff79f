#!/usr/bin/env bash
# Runs a VMM command line and checks its outcome; used by the `kvm` ctest tests.
#
#   run_guest.sh <timeout_s> <expected_exit> <pattern>... -- <vmm> <args>...
#
# <expected_exit> is a number, or `!0` for "any non-zero exit that is not a
# timeout". Every <pattern> (grep -E) must appear in the combined stdout+stderr.
# Without a usable /dev/kvm the test cannot run: it says so and exits 77, which
# ctest (SKIP_RETURN_CODE 77) reports as skipped, never as passed.
set -u

usage() { echo "usage: $0 <timeout_s> <expected_exit|!0> <pattern>... -- <command>..." >&2; exit 2; }

[ $# -ge 3 ] || usage
timeout_s=$1
expected=$2
shift 2
[[ $timeout_s =~ ^[0-9]+$ ]] || usage
[[ $expected =~ ^(!0|[0-9]+)$ ]] || usage

patterns=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    patterns+=("$1")
    shift
done
[ $# -ge 2 ] || usage
shift   # the --

# Opening for read/write is what the VMM does; mere existence is not enough.
kvm_dev=${RUN_GUEST_KVM_DEVICE:-/dev/kvm}   # overridable only to test this script
if ! { [ -c "$kvm_dev" ] && ( exec 3<>"$kvm_dev" ) 2>/dev/null; }; then
    echo "SKIPPED: /dev/kvm not available"
    exit 77
fi

log=$(mktemp "${TMPDIR:-/tmp}/run_guest.XXXXXX.log")
trap 'rm -f "$log"' EXIT

echo "run_guest: $* (timeout ${timeout_s}s)"
start=$(date +%s.%N)
timeout --kill-after=10 "$timeout_s" "$@" >"$log" 2>&1
rc=$?
end=$(date +%s.%N)
cat "$log"
echo "run_guest: exit code $rc after $(awk "BEGIN { printf \"%.2f\", $end - $start }") s"

status=0
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    echo "run_guest: FAIL: timed out after ${timeout_s}s"
    status=1
elif [ "$expected" = "!0" ]; then
    if [ "$rc" -eq 0 ]; then
        echo "run_guest: FAIL: expected a non-zero exit code, got 0"
        status=1
    fi
elif [ "$rc" -ne "$expected" ]; then
    echo "run_guest: FAIL: expected exit code $expected, got $rc"
    status=1
fi

for p in "${patterns[@]}"; do
    if ! grep -Eq -- "$p" "$log"; then
        echo "run_guest: FAIL: missing output matching: $p"
        status=1
    fi
done
# A guest that reports a failure fails the test, whatever else it printed.
if grep -q "TESTGUEST: FAIL" "$log"; then
    echo "run_guest: FAIL: the guest reported a failure"
    status=1
fi
[ $status -eq 0 ] && echo "run_guest: PASS"
exit $status
