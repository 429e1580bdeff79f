#!/usr/bin/env bash
# HyperAlloc install throughput, install=vcpu against install=worker.
#
#   hyperalloc_bench.sh <vmm> <test_guest.elf> [mib]
#
# For each install path a 1 GiB guest (mode hyperalloc-bench, auto=on,period=1s)
# waits until the host soft-reclaimed all its free memory, then allocates <mib> MiB
# (default 256) in 2 MiB blocks, each of which needs an install, and times it with
# the TSC. The test asserts that every block was installed (installs=<mib>/2, no
# failure, exit 0) and prints both rates; it does not compare them (this host is
# shared and noisy; one run gave 0.43 GiB/s for both, 5-6 ms per 2 MiB populate).
[ $# -ge 2 ] || { echo "usage: $0 <vmm> <test_guest.elf> [mib]" >&2; exit 2; }
vmm=$1 guest=$2 mib=${3:-256}
source "$(dirname "$0")/hyperalloc_lib.sh"
ha_setup hyperalloc_bench 60

results=()
for path in vcpu worker; do
    ha_start_vmm --cmdline "testguest.mode=hyperalloc-bench testguest.ha_bench_mib=$mib testguest.wait_s=10" \
        --cpus boot=1 --memory size=1G --balloon "model=hyperalloc,auto=on,period=1s,install=$path"
    ha_wait "^HA-BENCH waited .* ([0-9]+) of \\1 free 2 MiB frames soft-reclaimed"
    ha_wait "^HA-BENCH installs=$((mib / 2)) ms="
    ha_wait "^HA: done mismatches=0"
    ha_wait "^TESTGUEST: done"
    ha_wait_exit
    ha_assert_clean
    [ "$exit_code" -eq 0 ] || ha_fail "install=$path: VMM exit code $exit_code (want 0)"
    results+=("install=$path: $(grep -E '^HA-BENCH installs=' "$log")")
done
for r in "${results[@]}"; do ha_note "$r"; done
ha_note "PASS"
