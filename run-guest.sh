#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs packages, builds the
# default guest (our Linux 6.1 kernel and a busybox initramfs) and the VMM, and
# boots it with its console on this terminal. Extra arguments go to vmm, e.g.
#   ./run-guest.sh --cmdline "console=ttyS0 reboot=k panic=1 vmmtest.shell"
set -euo pipefail
cd "$(dirname "$0")"

./install-deps.sh
guest_dir=$(guest-kernel-config/build-guest.sh | tail -n 1)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGUEST_ARTIFACTS_DIR="$guest_dir" >/dev/null
cmake --build build -j "$(nproc)" --target vmm_bin

args=(--kernel "$guest_dir/vmlinux" --initramfs "$guest_dir/initramfs.cpio.gz"
      --cpus boot=2 --memory size=1G)
if [[ "$*" != *--cmdline* ]]; then args+=(--cmdline "console=ttyS0 reboot=k panic=1"); fi
exec build/vmm "${args[@]}" -v "$@"
