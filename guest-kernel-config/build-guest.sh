#!/usr/bin/env bash
# Builds the default guest: vmlinux, bzImage and initramfs.cpio.gz from Debian's
# linux-source-6.1 + guest.config + patches/, and busybox-static + initramfs/.
#
# Output goes to ${VMM_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmm-guest}/<key>/
# where <key> is a sha256 over every input. A finished key directory is never
# rebuilt. The key directory's path is the LAST line on stdout; everything else
# goes to stderr or to build.log in the key directory. See docs/guest-kernel.md.
set -euo pipefail

readonly SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The HyperAlloc layout and protocol headers the VMM uses, copied into the kernel
# tree (include/linux/hyperalloc/) so that guest and host share one definition.
readonly SHARED_HEADERS=("$SCRIPT_DIR/../balloon/include/balloon/llfree/llfree_layout.h"
    "$SCRIPT_DIR/../balloon/include/balloon/hyperalloc/hyperalloc_abi.h")
readonly CACHE_ROOT=${VMM_GUEST_CACHE:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/vmm-guest}
readonly SRC_TARBALL=/usr/src/linux-source-6.1.tar.xz
readonly BUSYBOX=/bin/busybox
readonly KARCH=x86_64
# Files whose presence (written last) marks a complete key directory.
readonly STAMP=stamp

log() { echo "build-guest: $*" >&2; }
die() { log "error: $*"; exit 1; }

pkg_version() {
    local v
    v=$(dpkg-query -W -f='${Version}' "$1" 2>/dev/null) || v=
    [[ -n $v ]] || die "package $1 is not installed (see the apt-get line in the README)"
    echo "$v"
}

# The cache key: package versions plus the content of every file in this folder
# that the build reads (including this script).
compute_key() {
    {
        echo "linux-source-6.1 $(pkg_version linux-source-6.1)"
        echo "busybox-static $(pkg_version busybox-static)"
        echo "gcc $(gcc -dumpfullversion)"
        cd "$SCRIPT_DIR"
        find build-guest.sh guest.config patches initramfs -type f -print0 |
            LC_ALL=C sort -z | xargs -0 sha256sum
        for h in "${SHARED_HEADERS[@]}"; do echo "$(basename "$h") $(sha256sum <"$h")"; done
    } | sha256sum | cut -d' ' -f1
}

check_tools() {
    local t missing=()
    for t in make gcc ld bc bison flex lz4 gzip patch flock tar xz sha256sum od; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]}"
    [[ -r $SRC_TARBALL ]] || die "$SRC_TARBALL not found (package linux-source-6.1)"
    [[ -x $BUSYBOX ]] || die "$BUSYBOX not found (package busybox-static)"
}

# run CMD...: appends its output to $LOG; on failure shows the log's tail and exits.
run() {
    if ! "$@" >>"$LOG" 2>&1; then
        log "failed: $*"
        tail -n 60 "$LOG" >&2
        die "build failed; full log: $LOG"
    fi
}

# Kconfig silently drops options whose dependencies are missing: every
# CONFIG_ line of the fragment must hold in the final .config.
verify_config() {
    local fragment=$1 config=$2 line name bad=()
    while IFS= read -r line; do
        if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
            grep -qxF -- "$line" "$config" ||
                bad+=("want '$line', got '$(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$config" || echo absent)'")
        elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
            name=${BASH_REMATCH[1]}
            ! grep -qE "^${name}=" "$config" ||
                bad+=("want '$name' unset, got '$(grep -E "^${name}=" "$config")'")
        fi
    done <"$fragment"
    if ((${#bad[@]})); then
        log "the final .config does not match guest.config:"
        printf '  %s\n' "${bad[@]}" >&2
        die "${#bad[@]} option(s) did not hold (missing dependency or typo)"
    fi
}

# Sanity checks on the artifacts: 64-bit x86 ELF vmlinux, bzImage boot protocol
# >= 2.12 with XLF_KERNEL_64 (64-bit entry point).
check_artifacts() {
    local out=$1 magic version xload
    magic=$(od -An -tx1 -N5 "$out/vmlinux" | tr -d ' \n')
    [[ $magic == 7f454c4602 ]] || die "vmlinux is not a 64-bit ELF (magic $magic)"
    [[ $(od -An -tx2 -j18 -N2 "$out/vmlinux" | tr -d ' \n') == 003e ]] ||
        die "vmlinux is not x86_64"
    [[ $(od -An -c -j0x202 -N4 "$out/bzImage" | tr -d ' \n') == HdrS ]] ||
        die "bzImage has no HdrS setup header"
    version=$((0x$(od -An -tx2 -j0x206 -N2 "$out/bzImage" | tr -d ' \n')))
    xload=$((0x$(od -An -tx2 -j0x236 -N2 "$out/bzImage" | tr -d ' \n')))
    ((version >= 0x020c)) || die "bzImage boot protocol $(printf %#x "$version") < 0x20c"
    ((xload & 1)) || die "bzImage xloadflags $(printf %#x "$xload") lack XLF_KERNEL_64"
    log "bzImage boot protocol $(printf %#06x "$version"), xloadflags $(printf %#x "$xload")"
}

# The initramfs is described as a gen_init_cpio list, so /dev/console (needed
# before /init runs: the kernel opens it for init's stdio) is created without
# root privileges and the archive is reproducible.
build_initramfs() {
    local src=$1 work=$2 out=$3 list applet d
    list=$work/initramfs.list
    run gcc -O2 -o "$work/gen_init_cpio" "$src/usr/gen_init_cpio.c"
    # The HyperAlloc tests' memory workload (static: the initramfs has no libc).
    run gcc -static -O2 -Wall -Wextra -Werror -o "$work/hamem" "$SCRIPT_DIR/initramfs/hamem.c"
    {
        for d in /bin /sbin /usr /usr/bin /usr/sbin /dev /proc /sys /tmp /run \
            /mnt /root /etc; do
            echo "dir $d 0755 0 0"
        done
        echo "nod /dev/console 0600 0 0 c 5 1"
        echo "nod /dev/null 0666 0 0 c 1 3"
        echo "file /bin/busybox $BUSYBOX 0755 0 0"
        echo "file /init $SCRIPT_DIR/initramfs/init 0755 0 0"
        echo "file /bin/hamem $work/hamem 0755 0 0"
        "$BUSYBOX" --list-full | LC_ALL=C sort | while IFS= read -r applet; do
            [[ $applet == bin/busybox ]] || echo "slink /$applet /bin/busybox 0777 0 0"
        done
    } >"$list"
    "$work/gen_init_cpio" -t 0 "$list" >"$out/initramfs.cpio" 2>>"$LOG" ||
        die "gen_init_cpio failed; see $LOG"
    gzip -9 -n -c "$out/initramfs.cpio" >"$out/initramfs.cpio.gz"
}

build() {
    local tmp=$1 key_dir=$2 src out start=$SECONDS
    src=$tmp/src
    out=$tmp/out
    mkdir -p "$src" "$out"
    LOG=$out/build.log
    : >"$LOG"
    log "building into $tmp (log: $LOG)"

    log "extracting $SRC_TARBALL"
    run tar -xf "$SRC_TARBALL" -C "$src" --strip-components=1

    local p
    while IFS= read -r -d '' p; do
        log "applying $(basename "$p")"
        run patch -d "$src" -p1 --forward --batch -i "$p"
    done < <(find "$SCRIPT_DIR/patches" -name '*.patch' -type f -print0 | LC_ALL=C sort -z)
    mkdir -p "$src/include/linux/hyperalloc"
    cp "${SHARED_HEADERS[@]}" "$src/include/linux/hyperalloc/"

    # Reproducible identity strings in the image (no user@host, fixed date).
    local -a mk=(make -C "$src" ARCH=$KARCH KBUILD_BUILD_USER=vmm
        KBUILD_BUILD_HOST=vmm-guest "KBUILD_BUILD_TIMESTAMP=$(date -u -d @0)")
    log "configuring (tinyconfig + guest.config)"
    run "${mk[@]}" tinyconfig
    run env -C "$src" ARCH=$KARCH scripts/kconfig/merge_config.sh -m .config \
        "$SCRIPT_DIR/guest.config"
    run "${mk[@]}" olddefconfig
    verify_config "$SCRIPT_DIR/guest.config" "$src/.config"

    log "compiling vmlinux and bzImage with $(nproc) jobs (several minutes)"
    run "${mk[@]}" -j"$(nproc)" vmlinux bzImage

    cp "$src/vmlinux" "$out/vmlinux"
    cp "$src/arch/x86/boot/bzImage" "$out/bzImage"
    cp "$src/.config" "$out/config"
    cp "$src/System.map" "$out/System.map"
    check_artifacts "$out"

    log "building the initramfs"
    build_initramfs "$src" "$tmp" "$out"

    {
        echo "kernel $(cat "$src/include/config/kernel.release")"
        echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - start)) s"
    } >"$out/$STAMP"
    mv -T "$out" "$key_dir"
    log "done in $((SECONDS - start)) s"
}

main() {
    check_tools
    local key key_dir tmp
    key=$(compute_key)
    key_dir=$CACHE_ROOT/$key
    if [[ -f $key_dir/$STAMP ]]; then
        echo "$key_dir"
        exit 0
    fi

    mkdir -p "$CACHE_ROOT"
    exec 9>"$CACHE_ROOT/$key.lock"
    log "waiting for the build lock $CACHE_ROOT/$key.lock"
    flock 9
    # Another run may have finished while we waited.
    if [[ -f $key_dir/$STAMP ]]; then
        echo "$key_dir"
        exit 0
    fi
    # Leftovers of an interrupted build of this key (we hold its lock).
    rm -rf "$key_dir" "$CACHE_ROOT/.build-$key".*

    tmp=$(mktemp -d "$CACHE_ROOT/.build-$key.XXXXXX")
    # On failure keep only the log, next to the key directory.
    trap 'if [[ -f "$tmp/out/build.log" ]]; then cp "$tmp/out/build.log" "$CACHE_ROOT/$key.failed.log"; log "log kept: $CACHE_ROOT/$key.failed.log"; fi; rm -rf "$tmp"' EXIT
    build "$tmp" "$key_dir"
    trap - EXIT
    rm -rf "$tmp" "$CACHE_ROOT/$key.failed.log"
    echo "$key_dir"
}

main "$@"
