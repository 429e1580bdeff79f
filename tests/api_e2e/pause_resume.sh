#!/usr/bin/env bash
# vm.pause / vm.resume on a counter-mode guest (one vCPU spinning at CPL3): the
# state in vm.info follows, 409 on a double pause or a resume while running, and
# the VMM's CPU time shows the vCPU really stops and runs again: while running it
# uses > 15% of a core (the spinning vCPU; on a loaded 2-core host it gets ~50%),
# while paused less than a quarter of that (measured: 0%).
#
#   pause_resume.sh <vmm> <test_guest.elf>
[ $# -eq 2 ] || { echo "usage: $0 <vmm> <test_guest.elf>" >&2; exit 2; }
vmm=$1 guest=$2
source "$(dirname "$0")/lib.sh"
api_setup api_pause_resume 120

# CPU time of the VMM (utime + stime) in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
window_s=2
# Percent of one core the VMM used over window_s seconds.
cpu_percent() {
    local a b
    a=$(cpu_ticks)
    sleep $window_s
    b=$(cpu_ticks)
    echo $(( (b - a) * 100 / (hz * window_s) ))
}

start_vmm --kernel "$guest" --cmdline "testguest.mode=counter" --cpus boot=1 --memory size=128M
wait_for "TESTGUEST: counter running"
expect 200 GET vm.info
check_json 'd["state"]' Running
expect 409 PUT vm.resume

for round in 1 2 3; do
    running=$(cpu_percent)
    expect 204 PUT vm.pause
    expect 200 GET vm.info
    check_json 'd["state"]' Paused
    expect 409 PUT vm.pause
    paused=$(cpu_percent)
    expect 204 PUT vm.resume
    expect 200 GET vm.info
    check_json 'd["state"]' Running
    expect 409 PUT vm.resume
    note "round $round: VMM CPU running ${running}%, paused ${paused}%"
    [ "$running" -gt 15 ] || fail "round $round: the VMM used only ${running}% of a core while running"
    [ $((paused * 4)) -lt "$running" ] ||
        fail "round $round: the VMM used ${paused}% of a core while paused (${running}% running)"
done
resumed=$(cpu_percent)
[ "$resumed" -gt 15 ] || fail "after the last resume the VMM used only ${resumed}% of a core"

# A paused VM can be shut down.
expect 204 PUT vm.pause
expect 204 PUT vm.shutdown
expect 200 GET vm.info
check_json 'd["state"]' Shutdown
expect 204 PUT vmm.shutdown
wait_exit
[ "$exit_code" = 0 ] || fail "VMM exit code $exit_code, want 0"
note PASS
