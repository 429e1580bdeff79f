#!/usr/bin/env bash
# HyperAlloc end to end: a hostile guest must not hurt the host.
#
#   hyperalloc_hostile.sh <vmm> <test_guest.elf> [storm]
#
# The guest (mode hyperalloc-hostile, 512 MiB, balloon 64M, auto mode every 1 s) sends
# 26 bad zone records (each probed: an install for the zone must answer ERR_ZONE),
# then its good record; it corrupts two child entries, a tree counter and its free
# counter for 3 s, in which this script grows the balloon to 128M (hard reclaim) and
# auto mode runs, and restores them (the host must have left them alone); it sends
# install requests for bad frames, zones and a hard-reclaimed frame (each must answer
# its error status), malformed install buffers, and a storm of installs (default
# 30000 here, the guest's default is 100000: 5-10 s per 30000 on this host) of frames
# the host never reclaimed, so any VMM growth meanwhile (> 4 MiB) is a leak; the
# guest then idles 1 s for the sample. After each step installs must still be answered. This script asserts that the VMM survives,
# logs the rejections, counts 26 bad records, ends cleanly (exit 0), and that its
# VmRSS and open fds did not grow over the storm.
[ $# -ge 2 ] || { echo "usage: $0 <vmm> <test_guest.elf> [storm]" >&2; exit 2; }
vmm=$1 guest=$2 storm=${3:-30000}
source "$(dirname "$0")/hyperalloc_lib.sh"
ha_setup hyperalloc_hostile 60

bad_records=26   # 18 bad records + 4 bad buffer lengths + duplicate + overlap + a pair
ha_start_vmm --cmdline "testguest.mode=hyperalloc-hostile testguest.seconds=2 testguest.ha_storm=$storm" \
    --cpus boot=1 --memory size=512M --balloon model=hyperalloc,size=64M,auto=on,period=1s
ha_wait "^HA: hostile corrupted "
ha_put_size 128M
ha_wait "^HA: hostile restored"
ha_stats
ha_note "after the corruption window: balloon $(ha_json 'd["actual_mib"]') MiB (target 128)"
ha_wait "^HA: hostile installs of bad frames and zones: answered with errors"
rss_start=$(ha_rss_kib)
fds_start=$(ha_fds)
ha_wait "^HA: hostile storm of [0-9]+ installs"
rss_end=$(ha_rss_kib)
fds_end=$(ha_fds)
ha_note "storm: VmRSS ${rss_start} -> ${rss_end} KiB, fds ${fds_start} -> ${fds_end}"
ha_stats
ha_note "device: bad_records $(ha_json 'd["hyperalloc"]["bad_records"]'), install requests $(ha_json 'd["hyperalloc"]["install_requests"]'), install errors $(ha_json 'd["hyperalloc"]["install_errors"]')"

ha_wait "^HA: hostile done"
ha_wait "^TESTGUEST: done"
ha_wait_exit
ha_assert_clean
[ "$exit_code" -eq 0 ] || ha_fail "VMM exit code $exit_code (want 0)"

# The device said why: the first rejections (later ones are rate-limited).
for line in "zone record 0 rejected: trees_gpa 0x100000000000: .* not inside one guest RAM region" \
            "zone record 0 rejected: lower_gpa 0xd0000000: .* not inside one guest RAM region" \
            "zone record 0 rejected: trees_gpa 0x[0-9a-f]+ is not 64-byte aligned" \
            "zone record 0 rejected: trees_gpa .* overlaps lower_gpa"; do
    grep -Eq -- "$line" "$log" || ha_fail "the log lacks '$line'"
done
grep -Eq "^HA: hostile [0-9]+ bad records rejected" "$log" || ha_fail "the guest could not check the rejections"
[ "$(ha_json 'd["hyperalloc"]["bad_records"]')" = $bad_records ] ||
    ha_fail "the device counted $(ha_json 'd["hyperalloc"]["bad_records"]') bad records, want $bad_records"
[ "$(ha_json 'd["actual_mib"]')" = 128 ] || ha_fail "the balloon is not at 128 MiB: $stats"
[ $((rss_end - rss_start)) -le $((4 * 1024)) ] ||
    ha_fail "VmRSS grew by $(( (rss_end - rss_start) / 1024 )) MiB during the install storm"
[ $((fds_end - fds_start)) -le 2 ] || ha_fail "open fds grew from $fds_start to $fds_end during the storm"
ha_note "PASS"
