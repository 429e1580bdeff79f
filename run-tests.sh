#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs packages, builds
# (or takes from the cache) the guest kernel, builds the VMM and runs ctest.
#   ./run-tests.sh               everything, the Linux boot tests included
#   ./run-tests.sh -L unit       extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")"

./install-deps.sh

# The guest kernel, vmlinux, bzImage and initramfs; cached under a hash of its inputs.
guest_dir=$(guest-kernel-config/build-guest.sh | tail -n 1)

build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGUEST_ARTIFACTS_DIR="$guest_dir"
cmake --build "$build" -j "$(nproc)"

cd "$build"
# Linux boot tests take minutes on hosts without hardware virtualization; they run
# alongside the fast tests and carry their own generous timeouts.
exec ctest --output-on-failure -j 2 "$@"
