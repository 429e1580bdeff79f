#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs to build, test and run.
# Called by run-tests.sh and run-guest.sh; safe to run again (apt-get is idempotent).
set -euo pipefail

PACKAGES=(
    # build
    build-essential cmake pkg-config ccache
    # libraries (KVM headers, fmt, JSON, HTTP, tests, device trees, seccomp filters)
    linux-libc-dev libfmt-dev nlohmann-json3-dev libcpp-httplib-dev catch2 libfdt-dev libseccomp-dev
    # the guest kernel and its initramfs
    linux-source-6.1 busybox-static bc bison flex libelf-dev libssl-dev cpio xz-utils lz4 kmod patch
    # the scripted tests
    curl procps iproute2 e2fsprogs python3
    # the automatic-ballooning evaluation's plot (bench/auto_balloon_eval.py)
    gnuplot-nox
    # sanitizer and fuzzing builds (tests/sanitize/run-sanitized.sh, docs/fuzzing.md):
    # clang 14, its runtimes (ASan, UBSan, TSan, libFuzzer) and llvm-symbolizer
    clang-14 libclang-rt-14-dev llvm-14
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
