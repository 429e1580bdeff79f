#!/usr/bin/env bash
# One Linux boot that exercises every virtio device from a real guest kernel:
# the root file system is ext4 on a read-only virtio-blk disk, /sbin/init
# (tests/system/rootfs/init) reports the virtio devices and their drivers, reads
# the hwrng, writes a line to hvc0, pings the host over virtio-net and waits for
# the balloon (target set before boot) to settle, then resets the machine.
#
#   virtio_linux_boot.sh <vmm> <guest_dir> <work_dir> <timeout_s>
#
# The rootfs image is made in <work_dir> at test time. virtio-net needs a private
# network namespace and /dev/net/tun; without them the boot runs without a NIC and
# says so (the other devices are still checked). Exit 77 (skipped) without /dev/kvm.
set -u

[ $# -eq 4 ] || { echo "usage: $0 <vmm> <guest_dir> <work_dir> <timeout_s>" >&2; exit 2; }
vmm=$1 guest=$2 work=$3 timeout_s=$4
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$work" || exit 1
img=$work/rootfs.img
hvc_log=$work/hvc.log
bash "$here/make_rootfs.sh" "$img" 16M || exit 1
rm -f "$hvc_log"
sectors=$(( $(stat -c %s "$img") / 512 ))

# --- virtio-net inside a private network namespace, when one can be made
ns=vmmlinux-$$
tap=vmmtap0 host_ip=10.200.0.1 guest_ip=10.200.0.2 guest_mac=52:54:00:12:34:56
net_reason=""
if ! command -v ip >/dev/null; then net_reason="no 'ip' command"
elif [ ! -c /dev/net/tun ]; then net_reason="/dev/net/tun not available"
elif ! ip netns add "$ns" 2>/dev/null; then net_reason="cannot create a network namespace"
else
    trap 'ip netns del "$ns" 2>/dev/null' EXIT
    if ! ip netns exec "$ns" true 2>/dev/null; then net_reason="cannot enter network namespace $ns"
    elif ! ip -n "$ns" tuntap add dev vmmprobe0 mode tap 2>/dev/null; then net_reason="cannot create a tap in $ns"
    else ip -n "$ns" link del vmmprobe0 || exit 1
    fi
fi

cmdline="console=ttyS0 reboot=k panic=1 root=/dev/vda ro rootwait"
prefix=()
net_args=()
# Slot order is disks, nets, rng, console, balloon (vmm/src/vm_virtio.cpp), and the
# guest numbers the virtio-mmio devices from the command line in that order.
# Every device is part of the check: without a namespace and a tap, virtio-net
# cannot be tested, and a run without it must not count as a pass.
if [ -n "$net_reason" ]; then
    echo "SKIPPED: virtio-net needs a private network namespace with a tap: $net_reason"
    exit 77
fi
prefix=(ip netns exec "$ns")
net_args=(--net "tap=$tap,ip=$host_ip,mask=255.255.255.0,mac=$guest_mac")
cmdline="$cmdline vmmtest.ip=$guest_ip/24 vmmtest.ping=$host_ip"
rng=2 con=3 bal=4

patterns=(
    # VMM side (-v): every device got its slot.
    "virtio device 'disk0' \(type 2\)" "virtio device 'rng' \(type 4\)"
    "virtio device 'console' \(type 3\)" "virtio device 'balloon' \(type 5\)"
    # virtio-blk probe, the ext4 root mounted read-only from it, init from it.
    "virtio_blk virtio0: 1/0/0 default/read/poll queues"
    "virtio_blk virtio0: \[vda\] $sectors 512-byte logical blocks"
    "EXT4-fs \(vda\): mounted filesystem with ordered data mode\. Quota mode: disabled\."
    "VFS: Mounted root \(ext4 filesystem\) readonly on device [0-9]+:0"
    "Run /sbin/init as init process"
    "VMM-ROOT: root is /dev/root ro,[^ ]* \(ext4\)"
    # Each device bound to its driver (ids: 2 blk, 1 net, 4 rng, 3 console, 5 balloon).
    "VMM-ROOT: virtio0 device 0x0002 driver virtio_blk "
    "VMM-ROOT: virtio$rng device 0x0004 driver virtio_rng "
    "VMM-ROOT: virtio$con device 0x0003 driver virtio_console "
    # Balloon without DEFLATE_ON_OOM (feature bit 2): inflated pages leave MemTotal.
    "VMM-ROOT: virtio$bal device 0x0005 driver virtio_balloon features [01]{2}0"
    "VMM-ROOT: rng virtio_rng\.[0-9]+"
    "VMM-ROOT: hwrng ok 32 bytes [0-9a-f]{64}"
    "VMM-ROOT: hvc0 present"
    "VMM-ROOT: balloon driver bound to virtio$bal"
    "VMM-ROOT: balloon settled after [0-9]+ s"
    # The VMM's own view (-v): the guest wrote actual == the target set before boot.
    "balloon: guest reached the target of 16384 pages \(64 MiB\)"
    # 512 MiB less the 64 MiB balloon. Measured with 1 GiB: 1018948 kB without a
    # balloon and exactly 256 MiB less with a 256 MiB one; for 512 MiB the kernel's
    # own share shrinks by ~8 MiB of struct pages, so ~437000 kB is expected. The
    # range is wide on purpose: the exact check is the VMM's "reached the target"
    # line above; this one shows the guest really lost the memory.
    "VMM-ROOT: MemTotal: 4[0-4][0-9]{4} kB"
    "VMM-ROOT: MemFree: [0-9]+ kB"
    "VMM-ROOT: rebooting"
    "virtio device 'net0' \(type 1\)"
    "VMM-ROOT: virtio1 device 0x0001 driver virtio_net "
    "VMM-ROOT: net eth0 $guest_mac"
    "VMM-ROOT: net ping $host_ip ok"
)

bash "$here/check_run.sh" --kvm "$timeout_s" 0 "${patterns[@]}" -- \
    "${prefix[@]}" "$vmm" -v --kernel "$guest/vmlinux" --memory size=512M \
    --cmdline "$cmdline" --disk "path=$img,readonly=on" "${net_args[@]}" \
    --rng --console "file=$hvc_log" --balloon model=virtio,size=64M
rc=$?
[ $rc -eq 0 ] || exit $rc

# The hvc0 line travels only through virtio-console's transmitq into the file.
echo "hvc0 output ($hvc_log):"
cat "$hvc_log" 2>/dev/null
if ! grep -qF "VMM-ROOT: hello from hvc0" "$hvc_log" 2>/dev/null; then
    echo "virtio_linux_boot: FAIL: the guest's hvc0 line is not in $hvc_log"
    exit 1
fi
echo "virtio_linux_boot: PASS"
