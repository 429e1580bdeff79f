#!/usr/bin/env bash
# Concurrent clients: 8 curl processes x 1000 GET vm.info while the VM runs (a
# counter-mode guest): four reuse one keep-alive connection for their 1000
# requests, four open a connection per request (Connection: close). Every reply
# must be 200, the VMM must still answer and run afterwards.
#
#   concurrency.sh <vmm> <test_guest.elf> [clients] [requests]
[ $# -ge 2 ] || { echo "usage: $0 <vmm> <test_guest.elf> [clients] [requests]" >&2; exit 2; }
vmm=$1 guest=$2 clients=${3:-8} requests=${4:-1000}
source "$(dirname "$0")/lib.sh"
api_setup api_concurrency 240

start_vmm --kernel "$guest" --cmdline "testguest.mode=counter" --cpus boot=1 --memory size=128M
wait_for "TESTGUEST: counter running"

start=$(date +%s.%N)
pids=()
for c in $(seq 1 "$clients"); do
    extra=()
    [ $((c % 2)) -eq 0 ] && extra=(-H 'Connection: close')
    # curl's URL globbing: one URL per request; the query string is ignored by the server.
    curl -s -o /dev/null -w '%{http_code}\n' --unix-socket "$sock" "${extra[@]}" \
        "http://localhost/api/v1/vm.info?n=[1-$requests]" >"$work/client$c" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
end=$(date +%s.%N)

total=0
for c in $(seq 1 "$clients"); do
    n=$(grep -c . "$work/client$c")
    ok=$(grep -cx 200 "$work/client$c")
    [ "$n" -eq "$requests" ] || fail "client $c finished $n of $requests requests"
    [ "$ok" -eq "$requests" ] || fail "client $c: $((requests - ok)) replies were not 200: $(grep -vx 200 "$work/client$c" | sort | uniq -c | tr '\n' ' ')"
    total=$((total + ok))
done
note "$total x 200 from $clients clients in $(awk "BEGIN { printf \"%.2f\", $end - $start }") s"
kill -0 "$pid" 2>/dev/null || fail "the VMM exited"
expect 200 GET vm.info
check_json 'd["state"]' Running
expect 204 PUT vmm.shutdown
wait_exit
[ "$exit_code" = 0 ] || fail "VMM exit code $exit_code, want 0"
note PASS
