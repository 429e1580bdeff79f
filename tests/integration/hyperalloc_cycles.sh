#!/usr/bin/env bash
# HyperAlloc end to end: 100 shrink/grow cycles under a running workload.
#
#   hyperalloc_cycles.sh <vmm> <test_guest.elf> [cycles]
#
# A 1 GiB guest (mode hyperalloc, verified random working set of 128 MiB, no end)
# gets vm.resize-balloon 512M and 0 alternately, back to back (every 10th cycle the
# statistics must show the balloon at the size asked for). Afterwards the balloon is
# at 0, the guest's status lines have advanced with zero mismatches, no install
# failed, and the VMM is alive; the test then ends it.
[ $# -ge 2 ] || { echo "usage: $0 <vmm> <test_guest.elf> [cycles]" >&2; exit 2; }
vmm=$1 guest=$2 cycles=${3:-100}
source "$(dirname "$0")/hyperalloc_lib.sh"
ha_setup hyperalloc_cycles 60

ha_start_vmm --cmdline "testguest.mode=hyperalloc testguest.ha_hold=128" \
    --cpus boot=1 --memory size=1G --balloon model=hyperalloc
ha_wait "^HA: ready zones=1 "
ha_wait "^HA: t=1s "
t_start=$(ha_last_t)
cycle_start=$(date +%s.%N)
for i in $(seq 1 "$cycles"); do
    ha_put_size 512M
    [ $((i % 10)) -eq 0 ] && ha_wait_actual 512 10
    ha_put_size 0
    [ $((i % 10)) -eq 0 ] && ha_wait_actual 0 10
    ha_guest_failed && ha_fail "the guest reported a failure in cycle $i"
    kill -0 "$pid" 2>/dev/null || ha_fail "the VMM died in cycle $i"
done
took=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $cycle_start }")
t_end=$(ha_last_t)
ha_note "$cycles cycles in ${took} s; guest status t=${t_start}s -> t=${t_end}s"
[ "$t_end" -gt "$t_start" ] || ha_fail "the guest printed no status line during the cycles"

# Back at 0: the guest keeps allocating (installing the returned frames) cleanly.
ha_wait_actual 0 10
ha_wait "^HA: t=$((t_end + 2))s .* mismatches=0 "
ha_stats
ha_note "after: installs $(ha_json 'd["hyperalloc"]["installs"]'), discard calls $(ha_json 'd["hyperalloc"]["discard_calls"]'), VmRSS $(ha_rss_kib) KiB"
[ "$(ha_json 'd["hyperalloc"]["install_errors"]')" = 0 ] || ha_fail "install errors: $stats"
[ "$(ha_json 'd["hyperalloc"]["hard_reclaimed_bytes"]')" = 0 ] || ha_fail "frames still held: $stats"
kill -0 "$pid" 2>/dev/null || ha_fail "the VMM is not alive at the end"
ha_assert_clean
grep -q "^HA: t=.* mismatches=0 " "$log" || ha_fail "no status line"
ha_note "PASS"
