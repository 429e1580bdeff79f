#!/usr/bin/env bash
# Runs tap_smoke inside a private network namespace, so the tap and its address
# (10.200.0.1/24) exist only there and nothing reaches the host's network.
# Exit 77 (ctest: skipped) when the machine cannot do that.
set -u
bin=${1:?usage: tap_smoke.sh path/to/tap_smoke}

skip() {
    echo "SKIPPED: $*" >&2
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root to create a network namespace"
[ -c /dev/net/tun ] || skip "/dev/net/tun is missing (no tun module?)"
command -v ip >/dev/null || skip "'ip' not found (install iproute2)"

ns="vmmtest-net-$$"
if ! err=$(ip netns add "$ns" 2>&1); then
    skip "cannot create network namespace: $err"
fi
trap 'ip netns delete "$ns" 2>/dev/null' EXIT
ip netns exec "$ns" ip link set lo up || skip "cannot run commands in the namespace"
ip netns exec "$ns" timeout 30 "$bin"
