#!/usr/bin/env python3
"""Boot-time and footprint figures for the closing notes and docs/benchmarks.md.

  tests/bench/boot_bench.py --vmm build/vmm --test-guest build/tests/guest/test_guest.elf \
      --guest-dir ~/.cache/vmm-guest/<key> [--runs 5] [--qemu-timeout 300]

Reports, all measured in this run on this host:
  * process start -> first guest instruction (test guest's port-0x80 code 0x01), median of N runs
  * process start -> guest init (our kernel's code 0x41 before it runs /init) and
    kernel entry (0x40), for vmlinux with the busybox initramfs
  * wall time to the initramfs's first line for vmm and, in the same run, QEMU
    (qemu-system-x86_64 -enable-kvm, same kernel (bzImage: QEMU cannot take our
    vmlinux) and initramfs), as a ratio; "did not boot" if QEMU times out
  * VMM resident memory excluding guest RAM (from /proc/PID/smaps, sampled while
    the Linux guest runs; mappings that back guest RAM are left out)
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

PROGRESS = re.compile(r"boot progress 0x([0-9a-f]{2}) at ([0-9.]+) ms")


def progress_codes(text):
    codes = {}
    for code, ms in PROGRESS.findall(text):
        codes.setdefault(int(code, 16), float(ms))
    return codes


def run_until(cmd, marker, timeout, ram_bytes=None):
    """Runs cmd; returns (seconds to marker or None, output, peak non-guest RSS KiB)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    os.set_blocking(proc.stdout.fileno(), False)
    out, seen, peak = b"", None, 0
    while time.monotonic() - start < timeout:
        chunk = proc.stdout.read() or b""
        out += chunk
        if seen is None and marker.encode() in out:
            seen = time.monotonic() - start
        if ram_bytes:
            peak = max(peak, rss_without_guest_ram(proc.pid, ram_bytes))
        if proc.poll() is not None:
            out += proc.stdout.read() or b""
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    return seen, out.decode(errors="replace"), peak


def rss_without_guest_ram(pid, ram_bytes):
    """Rss (KiB) of every mapping except those sized like guest RAM regions."""
    guest_sizes = {min(ram_bytes, 3 << 30)}
    if ram_bytes > 3 << 30:
        guest_sizes.add(ram_bytes - (3 << 30))
    total, skip = 0, False
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
                if m:
                    skip = int(m.group(2), 16) - int(m.group(1), 16) in guest_sizes
                elif line.startswith("Rss:") and not skip:
                    total += int(line.split()[1])
    except OSError:
        return 0
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmm", required=True)
    ap.add_argument("--test-guest", required=True)
    ap.add_argument("--guest-dir", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--qemu-timeout", type=int, default=300)
    ap.add_argument("--linux-timeout", type=int, default=900)
    a = ap.parse_args()

    host = "kvm_pvm (no VMX/SVM)" if os.path.exists("/sys/module/kvm_pvm") else "hardware virtualization"
    print(f"host: {os.uname().nodename}, {os.cpu_count()} CPUs, /dev/kvm via {host}")

    first = []
    for _ in range(a.runs):
        _, out, _ = run_until([a.vmm, "-v", "--kernel", a.test_guest, "--memory", "size=128M",
                               "--cmdline", "testguest.mode=compute"], "TESTGUEST: done", 60)
        codes = progress_codes(out)
        if 0x01 not in codes:
            sys.exit(f"test guest run did not report code 0x01:\n{out}")
        first.append(codes[0x01])
    print(f"process start -> first guest instruction: median {statistics.median(first):.2f} ms "
          f"(min {min(first):.2f}, max {max(first):.2f}, {a.runs} runs, test guest)")

    g = a.guest_dir
    ram = 1 << 30
    cmdline = "console=ttyS0 reboot=k panic=1"
    vmm_cmd = [a.vmm, "-v", "--kernel", f"{g}/vmlinux", "--initramfs", f"{g}/initramfs.cpio.gz",
               "--memory", "size=1G", "--cmdline", cmdline]
    vmm_s, out, rss = run_until(vmm_cmd, "VMM-GUEST: init started", a.linux_timeout, ram)
    codes = progress_codes(out)
    if vmm_s is None or 0x41 not in codes:
        sys.exit(f"vmm did not boot the guest to init:\n{out[-3000:]}")
    print(f"vmm: kernel entry (0x40) at {codes.get(0x40, float('nan')):.0f} ms, init (0x41) at "
          f"{codes[0x41]:.0f} ms, first initramfs line at {vmm_s:.1f} s (vmlinux, 1 vCPU, 1 GiB)")
    print(f"vmm: resident memory excluding guest RAM: peak {rss / 1024:.1f} MiB")

    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        print("qemu: qemu-system-x86_64 not installed (apt-get install qemu-system-x86); no ratio")
        return
    qemu_cmd = [qemu, "-enable-kvm", "-machine", "q35", "-cpu", "host", "-m", "1G", "-nographic",
                "-no-reboot", "-kernel", f"{g}/bzImage", "-initrd", f"{g}/initramfs.cpio.gz",
                "-append", cmdline + (" clearcpuid=smap,smep,xsave,pku,umip,popcnt,rdrand,rdseed,movbe,"
                                      "avx,avx2,fsgsbase,erms,fsrm,bmi1,bmi2,adx,sha_ni,aes,pclmulqdq,cx16 nopv"
                                      if "pvm" in host else "")]
    qemu_s, qout, _ = run_until(qemu_cmd, "VMM-GUEST: init started", a.qemu_timeout)
    if qemu_s is None:
        print(f"qemu: did not reach init within {a.qemu_timeout} s (last output: "
              f"{qout.strip().splitlines()[-1:] if qout.strip() else 'none'}); no ratio")
    else:
        print(f"qemu: first initramfs line at {qemu_s:.1f} s; vmm/qemu time ratio {vmm_s / qemu_s:.3f}")


if __name__ == "__main__":
    main()
