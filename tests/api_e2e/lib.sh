# Shared helpers of the API end-to-end tests (sourced, not run). Each test script
# sets `vmm` and `guest`, calls api_setup, starts the VMM with start_vmm and talks
# to it with curl --unix-socket. JSON is checked with python3 (no jq).
#
#   api_setup <name> <timeout_s>   skip (77) without /dev/kvm; temp dir; deadline
#   start_vmm <vmm args>...        VMM with --api-socket in the background; waits for ping
#   wait_for <regex> [count]       until the serial log has <count> (1) matching lines
#   call METHOD PATH [BODY]        sets $status, $body (and $headers) from one request
#   expect STATUS METHOD PATH [BODY]  call + status check + body shape (JSON / error / empty)
#   json EXPR [BODY]               evaluates the Python expression EXPR on d = json(BODY)
#   check_json EXPR WANT [...]     each Python EXPR on d = json($body) must print WANT
#   fail MESSAGE                   prints the VMM log and the message, exit 1
set -u

api_setup() {
    test_name=$1
    timeout_s=$2
    local kvm_dev=${RUN_GUEST_KVM_DEVICE:-/dev/kvm}
    if ! { [ -c "$kvm_dev" ] && ( exec 3<>"$kvm_dev" ) 2>/dev/null; }; then
        echo "SKIPPED: /dev/kvm not available"
        exit 77
    fi
    command -v curl >/dev/null || { echo "$test_name: FAIL: curl is not installed"; exit 1; }
    work=$(mktemp -d "${TMPDIR:-/tmp}/api_e2e.XXXXXX")
    sock=$work/api.sock
    log=$work/vmm.log
    pid=
    deadline=$(( $(date +%s) + timeout_s ))
    trap api_cleanup EXIT
    # The interpreter itself: a version-manager shim costs a process per call.
    py=$(python3 -c 'import sys; print(sys.executable)') || { echo "$test_name: FAIL: no python3"; exit 1; }
}

api_cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        sleep 0.2
        kill -9 "$pid" 2>/dev/null
    fi
    rm -rf "$work"
}

fail() {
    [ -f "$log" ] && { echo "---- VMM output ----"; tail -n 60 "$log"; echo "--------------------"; }
    echo "$test_name: FAIL: $*"
    exit 1
}

note() { local m="$*"; [ ${#m} -le 200 ] || m="${m:0:200}..."; echo "$test_name: [$(date +%T.%N | cut -c1-12)] $m"; }

time_left() { [ "$(date +%s)" -lt "$deadline" ]; }

start_vmm() {
    "$vmm" "$@" --api-socket "path=$sock" >"$log" 2>&1 &
    pid=$!
    while ! curl -s -o /dev/null --unix-socket "$sock" http://localhost/api/v1/vmm.ping 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || fail "the VMM exited before serving the API"
        time_left || fail "the API socket did not answer within ${timeout_s}s"
        sleep 0.05
    done
    note "VMM pid $pid serving $sock"
}

wait_for() {
    local pattern=$1 count=${2:-1}
    while [ "$(grep -Ec -- "$pattern" "$log")" -lt "$count" ]; do
        grep -q "TESTGUEST: FAIL" "$log" && fail "the guest reported a failure"
        kill -0 "$pid" 2>/dev/null || fail "the VMM exited before printing '$pattern' ($count times)"
        time_left || fail "no '$pattern' ($count times) within ${timeout_s}s"
        sleep 0.05
    done
}

# Waits for the VMM process to end; sets $exit_code.
wait_exit() {
    while kill -0 "$pid" 2>/dev/null; do
        time_left || fail "the VMM did not exit"
        sleep 0.05
    done
    wait "$pid"
    exit_code=$?
    pid=
}

call() {
    local method=$1 path=$2
    local args=(-s -o "$work/body" -D "$work/headers" -w '%{http_code}' --unix-socket "$sock" -X "$method")
    [ $# -ge 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    status=$(curl "${args[@]}" "http://localhost/api/v1/$path") || status="curl-error-$?"
    body=$(cat "$work/body" 2>/dev/null)
    headers=$(tr -d '\r' <"$work/headers" 2>/dev/null)
}

json() {
    "$py" -c '
import json, sys
d = json.loads(sys.argv[2])
v = eval(sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v))' "$1" "${2-$body}"
}

# check_json EXPR WANT [EXPR WANT]...: all on $body, in one python run.
check_json() {
    local out
    out=$("$py" -c '
import json, sys
try:
    d = json.loads(sys.argv[1])
except ValueError as e:
    sys.exit("not JSON (%s): %r" % (e, sys.argv[1][:300]))
args = sys.argv[2:]
for expr, want in zip(args[0::2], args[1::2]):
    try:
        v = eval(expr)
        got = v if isinstance(v, str) else json.dumps(v)
    except Exception as e:
        got = "<%s: %s>" % (type(e).__name__, e)
    if got != want:
        sys.exit("%s is %r, want %r (body: %s)" % (expr, got, want, sys.argv[1][:300]))
' "$body" "$@" 2>&1) || fail "$out"
}

expect() {
    local want=$1
    shift
    call "$@"
    [ "$status" = "$want" ] || fail "$1 $2 ${3-}: status $status, want $want (body: $body)"
    case $want in
        204) [ -z "$body" ] || fail "$1 $2: 204 with a body: $body" ;;
        2??) check_json 'type(d).__name__' dict ;;
        *) check_json 'type(d["error"]).__name__ + ":" + str(len(d["error"]) > 0)' "str:True" ;;
    esac
    note "$1 $2 ${3-} -> $status"
}
