#!/usr/bin/env bash
# virtio-net end to end: the test guest ARPs for the host side of a tap and must get
# the reply. Everything happens inside a private network namespace (created here,
# deleted on exit), so no host interface or address is touched.
#
#   virtio_net.sh create|existing <vmm> <test_guest.elf>
#
# create:   the VMM creates the tap and the guest MAC is random.
# existing: the tap is created here with a fixed MAC before the VMM opens it, and the
#           guest MAC is given: both MACs are asserted.
# Exit 77 (skipped) when namespaces or /dev/net/tun are not usable, or without
# /dev/kvm (run_guest.sh).
set -u

[ $# -eq 3 ] || { echo "usage: $0 create|existing <vmm> <test_guest.elf>" >&2; exit 2; }
what=$1 vmm=$2 guest=$3
here=$(cd "$(dirname "$0")" && pwd)
ns=vmmtest-$$
tap=vmmtap0
host_ip=10.200.0.1 guest_ip=10.200.0.2
host_mac=02:00:0a:c8:00:01 guest_mac=52:54:00:12:34:56

skip() { echo "SKIPPED: $*"; exit 77; }

command -v ip >/dev/null || skip "no 'ip' command"
[ -c /dev/net/tun ] || skip "/dev/net/tun not available"
ip netns add "$ns" 2>/dev/null || skip "cannot create a network namespace (needs CAP_SYS_ADMIN/CAP_NET_ADMIN)"
trap 'ip netns del "$ns" 2>/dev/null' EXIT
if ! ip netns exec "$ns" true 2>/dev/null; then
    skip "cannot enter network namespace $ns"
fi
if [ "$what" = existing ]; then
    ip -n "$ns" tuntap add dev "$tap" mode tap 2>/dev/null || skip "cannot create a tap in $ns"
    ip -n "$ns" link set "$tap" address "$host_mac" || exit 1
    net="tap=$tap,ip=$host_ip,mask=255.255.255.0,mac=$guest_mac"
    patterns=("TESTGUEST: net mac $guest_mac arp for $host_ip"
              "TESTGUEST: net ok arp reply from $host_mac ")
else
    # Probe that a tap can be made here at all, then leave creating it to the VMM.
    ip -n "$ns" tuntap add dev vmmprobe0 mode tap 2>/dev/null || skip "cannot create a tap in $ns"
    ip -n "$ns" link del vmmprobe0 || exit 1
    net="tap=$tap,ip=$host_ip,mask=255.255.255.0"
    patterns=("TESTGUEST: net mac [0-9a-f:]{17} arp for $host_ip"
              "TESTGUEST: net ok arp reply from [0-9a-f:]{17} ")
fi

bash "$here/run_guest.sh" 60 0 "TESTGUEST: mode virtio-net" "${patterns[@]}" "TESTGUEST: done" -- \
    ip netns exec "$ns" "$vmm" --kernel "$guest" \
    --cmdline "testguest.mode=virtio-net testguest.host_ip=$host_ip testguest.guest_ip=$guest_ip" \
    --cpus boot=1 --memory size=128M --net "$net"
