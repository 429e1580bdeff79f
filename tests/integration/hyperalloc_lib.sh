# Shared helpers of the HyperAlloc end-to-end tests (sourced, not run). Each script
# sets `vmm` and `guest`, calls ha_setup, starts the VMM with ha_start_vmm (test guest,
# --api-socket) and talks to it with curl --unix-socket; JSON is read with python3.
#
#   ha_setup <name> <timeout_s>    skip (77) without /dev/kvm; temp dir; deadline
#   ha_start_vmm <vmm args>...     VMM in the background; waits until the API answers
#   ha_wait <regex> [count]        until the serial log has <count> (1) matching lines
#   ha_put_size <size>             PUT vm.resize-balloon, must answer 204
#   ha_stats                       GET vm.balloon-statistics -> $stats (200 required)
#   ha_json <python expr>          evaluates EXPR on d = json($stats)
#   ha_rss_kib / ha_fds            VmRSS (KiB) / open fds of the VMM
#   ha_last_t                      the newest "HA: t=Ns" value of the guest
#   ha_wait_exit                   until the VMM exits; sets $exit_code
#   ha_fail <message>              prints the log tail and the message, exit 1
# Every wait fails at once when the guest printed a FAIL or MISMATCH line.
set -u

ha_setup() {
    test_name=$1
    timeout_s=$2
    local kvm_dev=${RUN_GUEST_KVM_DEVICE:-/dev/kvm}
    if ! { [ -c "$kvm_dev" ] && ( exec 3<>"$kvm_dev" ) 2>/dev/null; }; then
        echo "SKIPPED: /dev/kvm not available"
        exit 77
    fi
    command -v curl >/dev/null || { echo "$test_name: FAIL: curl is not installed"; exit 1; }
    py=$(python3 -c 'import sys; print(sys.executable)') || { echo "$test_name: FAIL: no python3"; exit 1; }
    work=$(mktemp -d "${TMPDIR:-/tmp}/hyperalloc.XXXXXX")
    sock=$work/api.sock
    log=$work/vmm.log
    pid=
    started=$(date +%s)
    deadline=$((started + timeout_s))
    trap ha_cleanup EXIT
}

ha_cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        sleep 0.2
        kill -9 "$pid" 2>/dev/null
    fi
    rm -rf "$work"
}

ha_fail() {
    [ -f "$log" ] && { echo "---- VMM output (last 80 lines) ----"; tail -n 80 "$log"; echo "------------------------------------"; }
    echo "$test_name: FAIL: $*"
    exit 1
}

ha_note() { echo "$test_name: [$(( $(date +%s) - started ))s] $*"; }

ha_time_left() { [ "$(date +%s)" -lt "$deadline" ]; }

ha_guest_failed() { grep -Eq "FAIL|MISMATCH" "$log"; }

ha_start_vmm() {
    "$vmm" --kernel "$guest" "$@" --api-socket "path=$sock" >"$log" 2>&1 &
    pid=$!
    while ! curl -s -o /dev/null --unix-socket "$sock" http://localhost/api/v1/vmm.ping 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || ha_fail "the VMM exited before serving the API"
        ha_time_left || ha_fail "the API socket did not answer within ${timeout_s}s"
        sleep 0.05
    done
    ha_note "VMM pid $pid: $*"
}

ha_wait() {
    local pattern=$1 count=${2:-1}
    while [ "$(grep -Ec -- "$pattern" "$log")" -lt "$count" ]; do
        ha_guest_failed && ha_fail "the guest reported a failure"
        kill -0 "$pid" 2>/dev/null || ha_fail "the VMM exited before printing '$pattern' ($count times)"
        ha_time_left || ha_fail "no '$pattern' ($count times) within ${timeout_s}s"
        sleep 0.05
    done
}

ha_put_size() {
    local code
    code=$(curl -s -o "$work/put" -w '%{http_code}' --unix-socket "$sock" -X PUT \
        -H 'Content-Type: application/json' --data-binary "{\"size\": \"$1\"}" \
        http://localhost/api/v1/vm.resize-balloon) || code="curl-error-$?"
    [ "$code" = 204 ] || ha_fail "PUT vm.resize-balloon $1: status $code ($(cat "$work/put" 2>/dev/null))"
}

ha_stats() {
    local code
    code=$(curl -s -o "$work/stats" -w '%{http_code}' --unix-socket "$sock" \
        http://localhost/api/v1/vm.balloon-statistics) || code="curl-error-$?"
    [ "$code" = 200 ] || ha_fail "GET vm.balloon-statistics: status $code"
    stats=$(cat "$work/stats")
}

ha_json() { "$py" -c 'import json, sys; d = json.loads(sys.argv[2]); print(eval(sys.argv[1]))' "$1" "$stats"; }

ha_rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null; }

ha_fds() { ls "/proc/$pid/fd" 2>/dev/null | wc -l; }

ha_last_t() { grep -Eo '^HA: t=[0-9]+s' "$log" | tail -n 1 | grep -Eo '[0-9]+' || echo -1; }

# Waits until the balloon's actual size (hard-reclaimed) is <mib> MiB.
ha_wait_actual() {
    local mib=$1 limit=$(( $(date +%s) + ${2:-10} ))
    while :; do
        ha_stats
        [ "$(ha_json 'd["actual_mib"]')" = "$mib" ] && return 0
        ha_guest_failed && ha_fail "the guest reported a failure"
        [ "$(date +%s)" -lt "$limit" ] || ha_fail "the balloon did not reach $mib MiB (stats: $stats)"
        sleep 0.1
    done
}

ha_wait_exit() {
    while kill -0 "$pid" 2>/dev/null; do
        ha_time_left || ha_fail "the VMM did not exit"
        sleep 0.05
    done
    wait "$pid"
    exit_code=$?
    pid=
}

ha_assert_clean() {
    ha_guest_failed && ha_fail "the guest reported a failure: $(grep -E 'FAIL|MISMATCH' "$log" | head -n 3)"
    return 0
}
