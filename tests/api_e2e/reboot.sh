#!/usr/bin/env bash
# vm.reboot: the VM is torn down and booted again from its config in the same
# process (the guest's mode line appears twice), the balloon size set through the
# API survives the reboot, and the API keeps answering throughout.
# vm.power-button is accepted (the counter guest ignores Ctrl-Alt-Del).
#
#   reboot.sh <vmm> <test_guest.elf>
[ $# -eq 2 ] || { echo "usage: $0 <vmm> <test_guest.elf>" >&2; exit 2; }
vmm=$1 guest=$2
source "$(dirname "$0")/lib.sh"
api_setup api_reboot 120

mib=$((1 << 20))
start_vmm --kernel "$guest" --cmdline "testguest.mode=counter" --cpus boot=1 --memory size=128M \
    --balloon model=virtio,size=8M
wait_for "TESTGUEST: mode counter" 1
wait_for "TESTGUEST: counter running" 1
expect 204 PUT vm.resize-balloon '{"size": "16M"}'
expect 204 PUT vm.power-button
expect 204 PUT vm.reboot
wait_for "TESTGUEST: mode counter" 2
wait_for "TESTGUEST: counter running" 2
expect 200 GET vmm.ping
check_json 'd["pid"]' "$pid"
expect 200 GET vm.info
check_json 'd["state"]' Running 'd["config"]["balloon"]["size"]' $((16 * mib)) \
    'd["balloon"]["target_bytes"]' $((16 * mib))
# A second reboot, from a paused VM.
expect 204 PUT vm.pause
expect 204 PUT vm.reboot
wait_for "TESTGUEST: mode counter" 3
expect 200 GET vm.info
check_json 'd["state"]' Running
expect 204 PUT vmm.shutdown
wait_exit
[ "$exit_code" = 0 ] || fail "VMM exit code $exit_code, want 0"
note PASS
