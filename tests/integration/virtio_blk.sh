#!/usr/bin/env bash
# virtio-blk end to end with the test guest, on a fresh 8 MiB raw file in <work_dir>.
#
#   virtio_blk.sh rw|ro <work_dir> <vmm> <test_guest.elf>
#
# rw: a first VM writes a seeded pattern (and checks read-back, IOERR past the end,
#     GET_ID); the host checks the file changed; a second VM on the same file reads
#     the pattern back (the data reached the file); a third VM with another seed must
#     report a mismatch (the verification can fail).
# ro: the disk is attached readonly=on; the guest's write must fail with IOERR and the
#     file must still be all zeros afterwards.
# Exit 77 (skipped) without a usable /dev/kvm (from run_guest.sh).
set -u

[ $# -eq 4 ] || { echo "usage: $0 rw|ro <work_dir> <vmm> <test_guest.elf>" >&2; exit 2; }
what=$1 work=$2 vmm=$3 guest=$4
here=$(cd "$(dirname "$0")" && pwd)
run_guest=$here/run_guest.sh
mkdir -p "$work" || exit 1
disk=$work/virtio_blk_$what.img
rm -f "$disk"
truncate -s 8M "$disk" || exit 1
id=vmmtestdisk

# run <mode> <seed> <disk options> <patterns>...: one VM through run_guest.sh.
run() {
    local mode=$1 seed=$2 opts=$3
    shift 3
    bash "$run_guest" 60 0 "TESTGUEST: mode $mode" "$@" "TESTGUEST: done" -- \
        "$vmm" --kernel "$guest" --cmdline "testguest.mode=$mode testguest.seed=$seed" \
        --cpus boot=1 --memory size=128M --disk "path=$disk,id=$id$opts"
}

# Whether the first 8 MiB of the file are all zero.
all_zero() { cmp -s -n 8388608 "$disk" /dev/zero; }

if [ "$what" = ro ]; then
    run virtio-blk-ro 7 ",readonly=on" "TESTGUEST: blk ro ok capacity 16384 sectors"
    rc=$?
    [ $rc -eq 0 ] || exit $rc
    if ! all_zero; then
        echo "virtio_blk: FAIL: the read-only disk file was modified"
        exit 1
    fi
    echo "virtio_blk: PASS (read-only)"
    exit 0
fi

seed=$(( (RANDOM << 15 | RANDOM) % 1000000 + 1 ))
echo "virtio_blk: seed $seed, disk $disk"
run virtio-blk "$seed" "" "TESTGUEST: blk ok capacity 16384 sectors id $id\$"
rc=$?
[ $rc -eq 0 ] || exit $rc
if all_zero; then
    echo "virtio_blk: FAIL: the guest's writes did not reach $disk (still all zero)"
    exit 1
fi
run virtio-blk-verify "$seed" "" "TESTGUEST: blk verify ok seed $seed capacity 16384 sectors"
rc=$?
[ $rc -eq 0 ] || exit $rc

# Negative control: the verify mode must notice a wrong pattern.
out=$(timeout --kill-after=10 60 "$vmm" --kernel "$guest" \
        --cmdline "testguest.mode=virtio-blk-verify testguest.seed=$((seed + 1))" \
        --cpus boot=1 --memory size=128M --disk "path=$disk,id=$id" 2>&1)
echo "$out"
if ! grep -q "TESTGUEST: FAIL blk data at sector 0 " <<<"$out"; then
    echo "virtio_blk: FAIL: verifying with the wrong seed did not report a mismatch"
    exit 1
fi
echo "virtio_blk: PASS"
