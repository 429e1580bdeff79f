#!/usr/bin/env bash
# HyperAlloc end to end with concurrent guest CPUs.
#
#   hyperalloc_smp.sh <vmm> <test_guest.elf> <vcpu|worker>
#
# A 2-vCPU, 1 GiB guest runs the hyperalloc workload on both CPUs at once
# (testguest.smp=1), each CPU installing through its own install queue, while auto
# mode (period 1 s) soft-reclaims what they free and this script shrinks and grows the
# balloon (10 x 256M/0). Both CPUs' blocks are verified continuously; the run must end
# with no mismatch, consistent counters, installs on record and exit 0.
[ $# -eq 3 ] || { echo "usage: $0 <vmm> <test_guest.elf> <vcpu|worker>" >&2; exit 2; }
vmm=$1 guest=$2 path=$3
source "$(dirname "$0")/hyperalloc_lib.sh"
ha_setup "hyperalloc_smp_$path" 60

ha_start_vmm --cmdline "testguest.mode=hyperalloc testguest.smp=1 testguest.ha_hold=256 testguest.seconds=8" \
    --cpus boot=2 --memory size=1G --balloon "model=hyperalloc,auto=on,period=1s,install=$path"
ha_wait "^HA: smp: the workload runs on 2 cpus"
ha_wait "^HA: t=1s "
for i in $(seq 1 10); do
    ha_put_size 256M
    ha_put_size 0
done
ha_wait_actual 0 10
ha_stats
ha_note "after 10 resize cycles: installs $(ha_json 'd["hyperalloc"]["installs"]'), auto-reclaimed $(ha_json 'd["hyperalloc"]["auto_reclaimed_bytes"]') bytes"
[ "$(ha_json 'd["hyperalloc"]["installs"]')" -gt 0 ] || ha_fail "no installs: $stats"
[ "$(ha_json 'd["hyperalloc"]["install_errors"]')" = 0 ] || ha_fail "install errors: $stats"

ha_wait "^HA: done mismatches=0"
ha_wait "^TESTGUEST: done"
ha_wait_exit
ha_assert_clean
[ "$exit_code" -eq 0 ] || ha_fail "VMM exit code $exit_code (want 0)"
ha_note "PASS ($(grep -E '^HA: t=' "$log" | tail -n 1 | cut -c5-))"
