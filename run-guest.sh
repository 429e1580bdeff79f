#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs packages, builds the
# default guest (our Linux 6.1 kernel and a busybox initramfs) and the VMM, and
# boots it with 2 vCPUs, 1 GiB, a virtio-rng, the HyperAlloc balloon (256 MiB taken,
# auto mode: free 2 MiB frames go back to the host every 5 s) and the REST API on $VMM_API_SOCKET (default
# /tmp/vmm.sock), with its console on this terminal. Extra arguments go to vmm, e.g.
#   ./run-guest.sh --cmdline "console=ttyS0 reboot=k panic=1 vmmtest.shell"
# and, from another terminal, while it runs:
#   curl --unix-socket /tmp/vmm.sock http://localhost/api/v1/vm.balloon-statistics
#   build/vmm remote --api-socket /tmp/vmm.sock resize-balloon 512M
set -euo pipefail
cd "$(dirname "$0")"

./install-deps.sh
guest_dir=$(guest-kernel-config/build-guest.sh | tail -n 1)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGUEST_ARTIFACTS_DIR="$guest_dir" >/dev/null
cmake --build build -j "$(nproc)" --target vmm_bin

socket=${VMM_API_SOCKET:-/tmp/vmm.sock}
# The default balloon model is HyperAlloc; the guest kernel's driver and allocator
# patch: docs/hyperalloc-linux.md. `vmmtest.hamem` on the command line gives the
# memory workload instead of the reboot (guest-kernel-config/initramfs/hamem.c).
args=(--kernel "$guest_dir/vmlinux" --initramfs "$guest_dir/initramfs.cpio.gz"
      --cpus boot=2 --memory size=1G --rng
      --balloon size=256M,auto=on --api-socket "path=$socket")
if [[ "$*" != *--cmdline* ]]; then args+=(--cmdline "console=ttyS0 reboot=k panic=1"); fi
echo "run-guest: API on $socket (curl --unix-socket $socket http://localhost/api/v1/vm.info)" >&2
exec build/vmm "${args[@]}" -v "$@"
