#!/usr/bin/env bash
# virtio-balloon end to end: the host memory of the VMM must follow the balloon.
#
#   balloon_rss.sh <vmm> <test_guest.elf>
#
# The guest (mode virtio-balloon, 512 MiB, balloon target 256 MiB) touches the target
# plus 16 MiB, inflates the balloon by the target, then deflates and touches again,
# printing a line after each phase and then pausing ~3 s. After each line this script
# samples VmRSS of the VMM process and asserts: RSS after inflating is at least
# 200 MiB below RSS after touching, and rises by at least 200 MiB again after the
# deflate+touch. Exit 77 (skipped) without a usable /dev/kvm.
set -u

[ $# -eq 2 ] || { echo "usage: $0 <vmm> <test_guest.elf>" >&2; exit 2; }
vmm=$1 guest=$2
min_drop_kib=$((200 * 1024))
timeout_s=120

kvm_dev=${RUN_GUEST_KVM_DEVICE:-/dev/kvm}
if ! { [ -c "$kvm_dev" ] && ( exec 3<>"$kvm_dev" ) 2>/dev/null; }; then
    echo "SKIPPED: /dev/kvm not available"
    exit 77
fi

log=$(mktemp "${TMPDIR:-/tmp}/balloon_rss.XXXXXX.log")
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -f "$log"
}
trap cleanup EXIT

"$vmm" --kernel "$guest" --cmdline "testguest.mode=virtio-balloon" --cpus boot=1 \
    --memory size=512M --balloon model=virtio,size=256M >"$log" 2>&1 &
pid=$!
deadline=$(( $(date +%s) + timeout_s ))

fail() {
    cat "$log"
    echo "balloon_rss: FAIL: $*"
    exit 1
}

# wait_for <pattern>: until the guest printed it (or failed, exited, or ran out of time).
wait_for() {
    while ! grep -Eq -- "$1" "$log"; do
        grep -q "TESTGUEST: FAIL" "$log" && fail "the guest reported a failure"
        kill -0 "$pid" 2>/dev/null || fail "the VMM exited before printing '$1'"
        [ "$(date +%s)" -lt "$deadline" ] || fail "no '$1' within ${timeout_s}s"
        sleep 0.05
    done
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null; }

wait_for "TESTGUEST: balloon touched [0-9]+ MiB"
rss_touched=$(rss_kib)
wait_for "TESTGUEST: balloon inflated 65536 pages"
rss_inflated=$(rss_kib)
wait_for "TESTGUEST: balloon deflated 65536 pages"
rss_deflated=$(rss_kib)
wait_for "TESTGUEST: done"

rc=0
while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
    fail "the VMM did not exit after the guest was done"
fi
wait "$pid"
rc=$?
pid=
cat "$log"
echo "balloon_rss: VmRSS touched ${rss_touched:-?} KiB, inflated ${rss_inflated:-?} KiB, deflated+touched ${rss_deflated:-?} KiB"
[ -n "$rss_touched" ] && [ -n "$rss_inflated" ] && [ -n "$rss_deflated" ] || fail "could not read VmRSS"
[ $rc -eq 0 ] || fail "VMM exit code $rc (want 0)"
grep -q "TESTGUEST: FAIL" "$log" && fail "the guest reported a failure"
[ $((rss_touched - rss_inflated)) -ge $min_drop_kib ] ||
    fail "inflating 256 MiB lowered RSS by only $(( (rss_touched - rss_inflated) / 1024 )) MiB (want >= 200)"
[ $((rss_deflated - rss_inflated)) -ge $min_drop_kib ] ||
    fail "deflating and touching raised RSS by only $(( (rss_deflated - rss_inflated) / 1024 )) MiB (want >= 200)"
echo "balloon_rss: PASS (inflate -$(( (rss_touched - rss_inflated) / 1024 )) MiB, deflate+touch +$(( (rss_deflated - rss_inflated) / 1024 )) MiB)"
