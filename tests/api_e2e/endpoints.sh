#!/usr/bin/env bash
# Every endpoint of the REST API (docs/api.md) with curl against the real VMM
# running the test guest in counter mode (it never ends by itself) with a balloon:
# status codes, JSON fields, every error class, the socket rules, and the
# VMM's life after vm.shutdown until vmm.shutdown.
#
#   endpoints.sh <vmm> <test_guest.elf>
[ $# -eq 2 ] || { echo "usage: $0 <vmm> <test_guest.elf>" >&2; exit 2; }
vmm=$1 guest=$2
source "$(dirname "$0")/lib.sh"
api_setup api_endpoints 120

mib=$((1 << 20))
ram=$((256 * mib))

# A stale socket (its server gone) at the path must be replaced.
"$py" -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$sock"
[ -S "$sock" ] || fail "could not create the stale socket"

start_vmm --kernel "$guest" --cmdline "testguest.mode=counter" --cpus boot=1 --memory size=256M \
    --balloon model=virtio,size=16M
wait_for "TESTGUEST: counter running"

# ---- socket rules ----
[ "$(stat -c %a "$sock")" = 600 ] || fail "socket mode $(stat -c %a "$sock"), want 600"
[ -e "$sock.lock" ] || fail "no lock file $sock.lock"
timeout 20 "$vmm" --kernel "$guest" --cmdline "testguest.mode=counter" --memory size=64M \
    --api-socket "path=$sock" >"$work/second.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a second VMM on the same socket: exit $rc, want a refusal"
note "second VMM on the socket refused: $(head -n 1 "$work/second.log")"
expect 200 GET vmm.ping   # the first VMM still serves

# ---- GET endpoints ----
expect 200 GET vmm.ping
check_json 'd["pid"]' "$pid" \
    'isinstance(d["version"], str) and len(d["version"]) > 0' true \
    'isinstance(d["features"], list)' true

expect 200 GET vm.info
check_json 'd["state"]' Running \
    'd["config"]["memory"]["size"]' $ram \
    'd["config"]["cpus"]["boot_vcpus"]' 1 \
    'd["config"]["payload"]["cmdline"].split()[0]' testguest.mode=counter \
    'd["config"]["balloon"]["size"]' $((16 * mib)) \
    'd["balloon"]["target_bytes"]' $((16 * mib)) \
    'd["balloon"]["actual_bytes"]' 0          # the counter guest has no balloon driver \
    'd["memory_actual_size"]' $ram

expect 200 GET vm.counters
check_json 'any("pages_inflated" in c for c in d.values())' true

expect 200 GET vm.balloon-statistics
check_json '[d["target_pages"], d["actual_pages"], d["target_mib"], d["actual_mib"]]' '[4096, 0, 16, 0]'

# ---- balloon sizes: bytes, "512M"-style strings, vm.resize ----
expect 204 PUT vm.resize-balloon '{"size": 33554432}'
expect 200 GET vm.balloon-statistics
check_json 'd["target_mib"]' 32
expect 204 PUT vm.resize-balloon '{"size": "8M"}'
expect 200 GET vm.balloon-statistics
check_json 'd["target_pages"]' 2048
expect 204 PUT vm.resize '{"desired_balloon": 16777216}'
expect 200 GET vm.info
check_json 'd["balloon"]["target_bytes"]' $((16 * mib))

# ---- 400: malformed, unknown fields, out of range, unsupported ----
expect 400 PUT vm.resize-balloon '{"size": '
expect 400 PUT vm.resize-balloon '[1, 2]'
expect 400 PUT vm.resize-balloon '{}'
expect 400 PUT vm.resize-balloon '{"size": 4096, "bogus": 1}'
expect 400 PUT vm.resize-balloon '{"size": -4096}'
expect 400 PUT vm.resize-balloon '{"size": 4097}'
expect 400 PUT vm.resize-balloon '{"size": "12Q"}'
expect 400 PUT vm.resize-balloon '{"size": "1G"}'        # larger than guest RAM
expect 400 PUT vm.resize-balloon "{\"size\": $ram}"      # all of guest RAM
expect 400 PUT vm.resize '{"desired_vcpus": 2}'
expect 400 PUT vm.resize '{"desired_ram": 536870912}'
expect 400 PUT vm.pause '{"bogus": true}'
expect 200 GET vm.info
check_json 'd["balloon"]["target_bytes"]' $((16 * mib))   # nothing above changed it

# ---- 404, 405 (with Allow), 413 ----
expect 404 GET vm.nonexistent
call GET ../../etc/passwd
[ "$status" = 404 ] || [ "$status" = 400 ] || fail "GET outside /api/v1: status $status"
expect 405 GET vm.pause
grep -qi '^Allow: PUT$' <<<"$headers" || fail "405 without 'Allow: PUT': $headers"
expect 405 PUT vm.info
grep -qi '^Allow: GET$' <<<"$headers" || fail "405 without 'Allow: GET': $headers"
expect 405 DELETE vmm.ping
big=$("$py" -c 'print("{\"size\": \"" + "1" * 100000 + "\"}")')
expect 413 PUT vm.resize-balloon "$big"

# ---- state changes: 409 on the wrong state ----
expect 409 PUT vm.resume
expect 204 PUT vm.pause
expect 200 GET vm.info
check_json 'd["state"]' Paused
expect 409 PUT vm.pause
expect 204 PUT vm.resume
expect 200 GET vm.info
check_json 'd["state"]' Running
expect 204 PUT vm.power-button     # Ctrl-Alt-Del on the i8042; the counter guest ignores it

# ---- vm.shutdown: the VMM keeps serving without a VM until vmm.shutdown ----
expect 204 PUT vm.shutdown
expect 200 GET vm.info
check_json 'd["state"]' Shutdown \
    'd["config"]["memory"]["size"]' $ram
for ep in vm.counters vm.balloon-statistics; do expect 404 GET $ep; done
for ep in vm.pause vm.resume vm.reboot vm.power-button vm.shutdown; do expect 404 PUT $ep; done
expect 404 PUT vm.resize-balloon '{"size": 4096}'
expect 200 GET vmm.ping
kill -0 "$pid" 2>/dev/null || fail "the VMM exited after vm.shutdown"
expect 204 PUT vmm.shutdown
wait_exit
[ "$exit_code" = 0 ] || fail "VMM exit code $exit_code after vmm.shutdown, want 0"
[ ! -e "$sock" ] || fail "the socket $sock is still there after the VMM exited"
note PASS
