#!/usr/bin/env bash
# vm.resize-balloon end to end: the test guest in balloon-follow mode (512 MiB,
# balloon 16 MiB) follows every new target; the API reports what it gave back.
# Then `vmm remote` resizes again, shuts the VM down and the VMM after it.
#
#   balloon.sh <vmm> <test_guest.elf>
[ $# -eq 2 ] || { echo "usage: $0 <vmm> <test_guest.elf>" >&2; exit 2; }
vmm=$1 guest=$2
source "$(dirname "$0")/lib.sh"
api_setup api_balloon 120

mib=$((1 << 20))
remote() { "$vmm" remote --api-socket "$sock" "$@"; }

start_vmm --kernel "$guest" --cmdline "testguest.mode=balloon-follow testguest.follow_s=300" --cpus boot=1 \
    --memory size=512M --balloon model=virtio,size=16M
wait_for "TESTGUEST: balloon now 4096 pages"

expect 204 PUT vm.resize-balloon '{"size": "64M"}'
wait_for "TESTGUEST: balloon config change, num_pages 16384"
wait_for "TESTGUEST: balloon now 16384 pages"
expect 200 GET vm.balloon-statistics
check_json 'd["target_mib"]' 64 'd["actual_mib"]' 64 'd["target_pages"]' 16384 'd["actual_pages"]' 16384
expect 200 GET vm.info
check_json 'd["memory_actual_size"]' $((448 * mib)) 'd["balloon"]["actual_bytes"]' $((64 * mib)) \
    'd["config"]["balloon"]["size"]' $((64 * mib))

# The remote client: deflating to 32M.
out=$(remote resize-balloon 32M 2>&1) || fail "vmm remote resize-balloon 32M: exit $?: $out"
[ -z "$out" ] || fail "vmm remote resize-balloon printed '$out' for a 204"
wait_for "TESTGUEST: balloon now 8192 pages"
body=$(remote balloon-statistics) || fail "vmm remote balloon-statistics: exit $?"
check_json 'd["actual_mib"]' 32 'd["target_mib"]' 32
body=$(remote info) || fail "vmm remote info: exit $?"
check_json 'd["memory_actual_size"]' $((480 * mib)) 'd["state"]' Running
note "vmm remote resize-balloon 32M: the guest followed"

# The remote client's errors: an HTTP error exits 1 with status and message; usage 2.
remote pause >/dev/null || fail "vmm remote pause: exit $?"
err=$(remote pause 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "vmm remote pause while paused: exit $rc, want 1"
[[ $err == "vmm remote: 409 "* ]] || fail "vmm remote pause while paused printed '$err'"
remote resume >/dev/null || fail "vmm remote resume: exit $?"
remote resize-balloon 12Q >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || fail "vmm remote resize-balloon 12Q: exit $rc, want 2 (usage)"
err=$(remote resize-balloon 1G 2>&1)
[ $? -eq 1 ] && [[ $err == "vmm remote: 400 "* ]] || fail "resize-balloon 1G (> RAM): '$err'"

# Shut down the VM, then the VMM.
out=$(remote shutdown 2>&1) || fail "vmm remote shutdown: exit $?: $out"
body=$(remote info) || fail "vmm remote info after shutdown: exit $?"
check_json 'd["state"]' Shutdown
err=$(remote balloon-statistics 2>&1)
[ $? -eq 1 ] && [[ $err == "vmm remote: 404 "* ]] || fail "balloon-statistics after shutdown: '$err'"
body=$(remote ping) || fail "vmm remote ping after shutdown: exit $?"
check_json 'd["pid"]' "$pid"
remote shutdown-vmm || fail "vmm remote shutdown-vmm: exit $?"
wait_exit
[ "$exit_code" = 0 ] || fail "VMM exit code $exit_code after shutdown-vmm, want 0"
err=$(remote ping 2>&1)
[ $? -eq 1 ] || fail "vmm remote ping with no VMM: want exit 1 ('$err')"
grep -q "TESTGUEST: FAIL" "$log" && fail "the guest reported a failure"
note PASS
