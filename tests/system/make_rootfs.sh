#!/usr/bin/env bash
# Builds the small ext4 root file system the virtio Linux boot test mounts from
# virtio-blk: busybox (static) with its applet links, empty /dev /proc /sys, and
# /sbin/init = tests/system/rootfs/init.
#
#   make_rootfs.sh OUT.img [SIZE]     (SIZE for truncate, default 16M)
#
# Needs /bin/busybox (busybox-static) and mkfs.ext4 (e2fsprogs); no root rights,
# no loop devices (mkfs.ext4 -d copies a staging directory into the image).
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then echo "usage: $0 OUT.img [SIZE]" >&2; exit 2; fi
out=$1
size=${2:-16M}
here=$(cd "$(dirname "$0")" && pwd)
busybox=/bin/busybox

die() { echo "make_rootfs: $*" >&2; exit 1; }
[ -x "$busybox" ] || die "$busybox not found (package busybox-static)"
command -v mkfs.ext4 >/dev/null || PATH=$PATH:/sbin:/usr/sbin
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not found (package e2fsprogs)"

staging=$(mktemp -d "${TMPDIR:-/tmp}/rootfs.XXXXXX")
trap 'rm -rf "$staging"' EXIT

mkdir -p "$staging"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc}
cp "$busybox" "$staging/bin/busybox"
# Applet links at the paths busybox itself reports (bin/sh, sbin/reboot, ...).
while read -r applet; do
    applet=${applet#/}
    [ -e "$staging/$applet" ] || ln -s /bin/busybox "$staging/$applet"
done < <("$busybox" --list-full)
[ -L "$staging/bin/sh" ] || die "busybox has no 'sh' applet"
install -m 0755 "$here/rootfs/init" "$staging/sbin/init"

tmp_img="$out.tmp.$$"
rm -f "$tmp_img"
truncate -s "$size" "$tmp_img"
# root_owner: the guest's / belongs to root whoever builds the image.
mkfs.ext4 -q -F -L vmmroot -E root_owner=0:0 -d "$staging" "$tmp_img" ||
    { rm -f "$tmp_img"; die "mkfs.ext4 failed"; }
mv -f "$tmp_img" "$out"
echo "make_rootfs: $out ($size, ext4, busybox $("$busybox" | head -1 | awk '{print $2}'))"
