#!/usr/bin/env bash
# HyperAlloc end to end: shrink a running guest to half and grow it back.
#
#   hyperalloc_shrink.sh <vmm> <test_guest.elf>
#
# A 2 GiB guest (mode hyperalloc: all memory touched once, then a verified random
# working set of 256 MiB) gets vm.resize-balloon 1G: the balloon must report 1 GiB
# hard-reclaimed, the VMM's VmRSS must fall by >= 900 MiB, the guest's shared free
# counter must show the loss, and the guest must keep running with no mismatch.
# Growing back to 0 returns the frames; the guest installs them as it allocates and
# ends its run cleanly (counters consistent, exit 0).
[ $# -eq 2 ] || { echo "usage: $0 <vmm> <test_guest.elf>" >&2; exit 2; }
vmm=$1 guest=$2
source "$(dirname "$0")/hyperalloc_lib.sh"
ha_setup hyperalloc_shrink 60

min_drop_kib=$((900 * 1024))
ha_start_vmm --cmdline "testguest.mode=hyperalloc testguest.ha_hold=256 testguest.seconds=14" \
    --cpus boot=1 --memory size=2G --balloon model=hyperalloc
ha_wait "^HA: ready zones=1 "
ha_wait "^HA: t=1s "
rss_before=$(ha_rss_kib)
ha_note "ready; VmRSS ${rss_before} KiB"

ha_put_size 1G
ha_wait_actual 1024 10
rss_shrunk=$(ha_rss_kib)
free=$(ha_json 'd["hyperalloc"]["guest_free_bytes"]')
ha_note "shrunk to 1 GiB: VmRSS ${rss_shrunk} KiB, guest free counter ${free} bytes"
[ $((rss_before - rss_shrunk)) -ge $min_drop_kib ] ||
    ha_fail "shrinking by 1 GiB lowered VmRSS by only $(( (rss_before - rss_shrunk) / 1024 )) MiB (want >= 900)"
[ "$free" -le $((1024 << 20)) ] || ha_fail "the guest's free counter still shows $free bytes after giving 1 GiB"

# The guest keeps working with half its memory.
t=$(ha_last_t)
ha_wait "^HA: t=$((t + 2))s .* mismatches=0 "

ha_put_size 0
ha_wait_actual 0 10
t=$(ha_last_t)
ha_wait "^HA: t=$((t + 2))s .* mismatches=0 "
ha_stats
ha_note "grown back: installs $(ha_json 'd["hyperalloc"]["installs"]'), VmRSS $(ha_rss_kib) KiB"
[ "$(ha_json 'd["hyperalloc"]["install_errors"]')" = 0 ] || ha_fail "install errors: $stats"

ha_wait "^HA: done mismatches=0"
ha_wait "^TESTGUEST: done"
ha_wait_exit
ha_assert_clean
[ "$exit_code" -eq 0 ] || ha_fail "VMM exit code $exit_code (want 0)"
grep -Eq "^HA: consistent at the end" "$log" || ha_fail "no consistency line"
ha_note "PASS (VmRSS -$(( (rss_before - rss_shrunk) / 1024 )) MiB on shrink)"
