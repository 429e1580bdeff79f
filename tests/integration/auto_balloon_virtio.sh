#!/usr/bin/env bash
# Automatic ballooning end to end with the virtio-balloon (docs/auto-balloon.md):
# host pressure from a PSI file this script writes, guest pressure from the guest's
# own statistics.
#
#   auto_balloon_virtio.sh <vmm> <test_guest.elf>
#
# A 1 GiB guest in balloon-follow mode with the phase workload: 64 MiB for 14 s,
# then 640 MiB for 10 s. The controller ticks every second, steps 64 MiB, keeps a
# 256 MiB floor and an 8 s hysteresis.
#  1. The PSI file says "idle": nothing is inflated.
#  2. It says "some avg10=25%": the target rises by 64 MiB per tick (64, 128, 192 MiB
#     ...) and the guest follows (its "balloon now" lines).
#  3. The guest's next phase needs memory the balloon holds: its available memory
#     falls below the minimum and the controller deflates at the next tick (within 4 s
#     of the guest's first wait) without waiting for the host pressure to end.
#  4. While the hysteresis lasts no inflate happens although the PSI file still says
#     25%; the decisions are in the log and in vm.balloon-statistics.
#  5. The guest finishes its work with every page intact (it checks them), exit 0.
[ $# -eq 2 ] || { echo "usage: $0 <vmm> <test_guest.elf>" >&2; exit 2; }
vmm=$1 guest=$2
source "$(dirname "$0")/hyperalloc_lib.sh"
ha_setup auto_balloon_virtio 80

psi=$work/memory.pressure
idle='some avg10=0.00 avg60=0.00 avg300=0.00 total=0
full avg10=0.00 avg60=0.00 avg300=0.00 total=0'
pressure='some avg10=25.00 avg60=9.00 avg300=2.00 total=9000000
full avg10=4.00 avg60=1.00 avg300=0.20 total=1000000'
# In place: the controller keeps the file open, so a rename would not be seen.
set_psi() { printf '%s\n' "$1" >"$psi"; }
set_psi "$idle"
mib=$((1 << 20))

ha_start_vmm -v --cmdline "testguest.mode=balloon-follow testguest.phases=64:14,640:10 testguest.passes=2" \
    --cpus boot=1 --memory size=1G \
    --balloon "model=virtio,size=0,auto=on,stats_polling_interval_s=1,stats_max_age=3s,tick=1s,step=64M,floor=256M,hysteresis=8s,psi=$psi"
grep -q "auto-balloon: host pressure from $psi: read every tick" "$log" ||
    ha_fail "the controller did not report its PSI source"
ha_wait "^TESTGUEST: phase 0 start ws=64 MiB"
ha_wait "^TESTGUEST: balloon-follow with phases, .* statistics on"

# 1. Idle host: two ticks, nothing inflated.
sleep 2.2
ha_stats
[ "$(ha_json 'd["auto_balloon"]["enabled"]')" = True ] || ha_fail "auto_balloon not enabled: $stats"
[ "$(ha_json 'd["auto_balloon"]["psi_mode"]')" = periodic ] || ha_fail "psi_mode: $stats"
[ "$(ha_json 'd["target_mib"]')" = 0 ] || ha_fail "inflated on an idle host: $stats"
[ "$(ha_json 'd["auto_balloon"]["inflates"]')" = 0 ] || ha_fail "inflates on an idle host: $stats"
[ "$(ha_json 'd["auto_balloon"]["ticks"]')" -ge 2 ] || ha_fail "fewer than 2 ticks in 2 s: $stats"

# 2. Host pressure: one step per tick, the guest follows.
set_psi "$pressure"
ha_note "PSI file: some avg10=25%"
for step in 1 2 3; do
    ha_wait "inflate: host PSI some avg10 25.00% > 10%: inflate by 64 MiB to $((64 * step)) MiB"
    ha_wait "^TESTGUEST: balloon now $((16384 * step)) pages"
done
ha_stats
[ "$(ha_json 'd["auto_balloon"]["host_pressure"]')" = True ] || ha_fail "host_pressure: $stats"
[ "$(ha_json 'd["auto_balloon"]["last_psi"]["some"]["avg10"]')" = 25.0 ] || ha_fail "last_psi: $stats"
[ "$(ha_json 'd["auto_balloon"]["last_action"]["action"]')" = inflate ] || ha_fail "last_action: $stats"
[ "$(ha_json 'd["available_memory"] > 0')" = True ] || ha_fail "no guest statistics: $stats"
ha_note "inflated in 64 MiB steps: target $(ha_json 'd["target_mib"]') MiB, actual $(ha_json 'd["actual_mib"]') MiB"

# 3. The guest's big phase: it has to wait for memory; the controller deflates at once.
ha_wait "^TESTGUEST: phase 1 start ws=640 MiB"
ha_wait "^TESTGUEST: phase 1 stall: waiting for the balloon"
stalled=$(date +%s.%N)
ha_wait "auto-balloon t=[0-9.]+s (deflate|cancel_inflate): guest available"
took=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $stalled }")
# One statistics period (1 s) and one tick (1 s) at most, plus slack for this host.
awk "BEGIN { exit !($took <= 4.0) }" || ha_fail "the first deflate came ${took} s after the guest began to wait"
first=$(grep -Em1 "auto-balloon t=[0-9.]+s (deflate|cancel_inflate): guest available" "$log")
ha_note "guest pressure: deflate ${took} s after the guest began to wait: ${first#*auto-balloon }"
ha_stats
[ "$(ha_json 'd["auto_balloon"]["deflates"] + d["auto_balloon"]["cancels"] >= 1')" = True ] ||
    ha_fail "no deflate counted: $stats"
[ "$(ha_json 'd["auto_balloon"]["in_hysteresis"]')" = True ] || ha_fail "not in hysteresis after a deflate: $stats"

# 4. No inflate before the hysteresis ends, although the host is still under pressure.
ha_wait "^TESTGUEST: phase 1 done"
ha_wait "^TESTGUEST: phases done"
ha_wait "^TESTGUEST: done"
ha_wait_exit
ha_assert_clean
[ "$exit_code" -eq 0 ] || ha_fail "VMM exit code $exit_code (want 0)"
# Every inflate must lie outside [deflate time, its "no inflate until") windows.
"$py" - "$log" <<'EOF' || ha_fail "an inflate happened inside a hysteresis window"
import re, sys
windows, bad = [], []
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"auto-balloon t=([0-9.]+)s (\w+): (.*)", line)
    if not m:
        continue
    t, action, reason = float(m.group(1)), m.group(2), m.group(3)
    u = re.search(r"no inflate until t=([0-9.]+)s", reason)
    if action in ("deflate", "cancel_inflate") and u:
        windows.append((t, float(u.group(1))))
    if action == "inflate" and any(a <= t < b for a, b in windows):
        bad.append(line.strip())
print("hysteresis windows:", windows)
for line in bad:
    print("inflate inside a window:", line)
sys.exit(1 if bad or not windows else 0)
EOF
grep -E "TESTGUEST: phases done" "$log"
ha_note "PASS ($(grep -c 'auto-balloon t=.* inflate:' "$log") inflates, $(grep -Ec 'auto-balloon t=.* (deflate|cancel_inflate):' "$log") deflates)"
