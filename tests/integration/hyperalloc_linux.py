#!/usr/bin/env python3
"""HyperAlloc with the Linux guest kernel (issue 6), end to end.

Boots our guest kernel (patches/0003: the allocator's 2 MiB free state shared in the
LLFree layout, the virtio HyperAlloc driver) with the HyperAlloc balloon and drives
the initramfs workload `hamem` over the serial console (guest-kernel-config/
initramfs/hamem.c) while it resizes the balloon through the REST API.

  hyperalloc_linux.py manual --vmm V --guest-dir G [--work DIR]
      the driver reports its zones; the kernel self-test runs; the workload touches
      the free memory; a shrink through the API lowers the guest's MemFree by the
      balloon size and the VMM's RSS by most of it; allocations still work while
      shrunk; a grow gives MemFree back; allocating it again installs the returned
      frames; the workload's patterns never break while the host shrinks and grows
      in a loop; a shrink the free memory cannot cover asks the guest to drop its
      page cache, which it does.
  hyperalloc_linux.py auto --vmm V --guest-dir G
      auto mode (period 2 s): memory the workload frees leaves the VMM's RSS
      within two periods, allocating it again installs it, the self-test's rounds
      install what the host reclaimed between them.

Every guest kernel instruction is emulated on the development hosts (kvm_pvm), so a
boot takes minutes there: this is a `slow` test. Exit 0 pass, 1 fail, 77 skipped.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "soak"))
from vmm_probe import Api, kvm_usable, rss_kib  # noqa: E402

MIB = 1 << 20
RAM_MIB = 1024


class Fail(Exception):
    pass


def note(msg):
    print(f"hyperalloc_linux: {msg}", flush=True)


class Guest:
    """A running vmm with the Linux guest; its console is our stdin/stdout pipe."""

    def __init__(self, args, balloon, extra_cmdline, extra_args=(), cpus=2):
        self.cpus = cpus
        self.work = args.work
        self.log_path = os.path.join(self.work, "vmm.log")
        sock = os.path.join(self.work, "api.sock")
        self.api = Api(sock, timeout=30)
        cmdline = f"console=ttyS0 reboot=k panic=1 vmmtest.hamem {extra_cmdline}"
        cmd = [args.vmm, "-v", "--kernel", os.path.join(args.guest_dir, "vmlinux"),
               "--initramfs", os.path.join(args.guest_dir, "initramfs.cpio"),
               "--cpus", f"boot={cpus}", "--memory", f"size={RAM_MIB}M", "--balloon", balloon,
               "--api-socket", f"path={sock}", "--cmdline", cmdline, *extra_args]
        note("starting: " + " ".join(cmd))
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT)
        self.pos = 0  # console text before this offset has been consumed

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def check_alive(self, what):
        if self.proc.poll() is not None:
            raise Fail(f"the VMM exited with {self.proc.returncode} {what}")

    def wait_for(self, pattern, timeout, consume=True, anywhere=False):
        """Waits for pattern after the consumed part of the log (or anywhere in it);
        returns the match."""
        end = time.monotonic() + timeout
        while True:
            text = self.text()
            m = re.compile(pattern, re.M).search(text, 0 if anywhere else self.pos)
            if m:
                if consume:
                    self.pos = m.end()
                return m
            bad = re.search(r"Kernel panic|BUG:|Oops|WARNING: CPU|HAMEM: mismatch", text)
            if bad:
                line = text[text.rfind("\n", 0, bad.start()) + 1:text.find("\n", bad.start())]
                raise Fail(f"the guest reported: {line}")
            self.check_alive(f"while waiting for '{pattern}'")
            if time.monotonic() > end:
                raise Fail(f"no '{pattern}' within {timeout:.0f} s")
            time.sleep(0.2)

    def hamem(self, command, timeout=900):
        """Runs one workload command; returns the console text of its answer."""
        start = self.pos
        self.proc.stdin.write((command + "\n").encode())
        self.proc.stdin.flush()
        verb = command.split()[0]
        m = self.wait_for(rf"^HAMEM: (ok {verb} \(mismatches so far (\d+)\)|error .*)$", timeout)
        answer = self.text()[start:m.end()]
        if m.group(1).startswith("error"):
            raise Fail(f"hamem '{command}': {m.group(1)}")
        if int(m.group(2)) != 0:
            raise Fail(f"hamem '{command}': {m.group(2)} pattern mismatches")
        return answer

    def meminfo(self):
        ans = self.hamem("meminfo")
        m = re.search(r"HAMEM: meminfo MemTotal (\d+) kB MemFree (\d+) kB", ans)
        return int(m.group(1)), int(m.group(2))

    def proc_stats(self):
        """{zone name: {field: int}} from /proc/hyperalloc."""
        ans = self.hamem("proc")
        zones = {}
        for line in re.findall(r"^HAMEM: proc zone (.*)$", ans, re.M):
            words = line.split()
            zones[words[0]] = {words[i]: int(words[i + 1], 0) for i in range(1, len(words) - 1, 2)}
        return zones

    def guest_rss_mib(self):
        return rss_kib(self.proc.pid, RAM_MIB * MIB)[1] / 1024

    def resize(self, mib, timeout=120):
        status, body = self.api.put("vm.resize-balloon", {"size": mib * MIB})
        if status != 204:
            raise Fail(f"PUT vm.resize-balloon {mib} MiB: {status} {body}")
        end = time.monotonic() + timeout
        while True:
            actual = self.stats()["actual_mib"]
            if actual == mib:
                return
            if time.monotonic() > end:
                raise Fail(f"balloon at {actual} MiB, not {mib} MiB, after {timeout} s")
            time.sleep(0.2)

    def stats(self):
        status, body = self.api.get("vm.balloon-statistics")
        if status != 200:
            raise Fail(f"GET vm.balloon-statistics: {status} {body}")
        return body

    def finish(self, timeout=600, shell=False):
        self.proc.stdin.write(b"quit\n")
        self.proc.stdin.flush()
        self.wait_for(r"VMM-GUEST: hamem exited 0", timeout)
        if shell:
            # /init's interactive shell (vmmtest.shell) answers what is typed on the console.
            self.wait_for(r"VMM-GUEST: shell", timeout)
            self.proc.stdin.write(b"echo SHELL-OK $((6*7)) && exit\n")
            self.proc.stdin.flush()
            self.wait_for(r"^SHELL-OK 42", timeout)
            self.wait_for(r"VMM-GUEST: shell exited", timeout)
        self.wait_for(r"VMM-GUEST: rebooting", timeout)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Fail("the guest did not reset after the workload")
        if rc != 0:
            raise Fail(f"the VMM exited with {rc}")
        self.wait_for(r"guest reset through the i8042", 5)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def expect(cond, what):
    if not cond:
        raise Fail(what)
    note("ok: " + what)


def boot(g, boot_timeout):
    t0 = time.monotonic()
    m = g.wait_for(r"virtio_hyperalloc \S+: reported zone DMA32 \(type 0\): start pfn (0x[0-9a-f]+), (\d+) pages",
                   boot_timeout)
    g.wait_for(rf"virtio_hyperalloc \S+: ready: {g.cpus} install queues", 60)
    zones = g.stats()["hyperalloc"]["zones"]
    expect(any(z["type"] == "DMA32" and z["start_pfn"] == int(m.group(1), 16) and z["pages"] == int(m.group(2))
               for z in zones),
           f"the driver reported DMA32 (start pfn {m.group(1)}, {m.group(2)} pages) and the VMM took it: {zones}")
    g.wait_for(r"^HAMEM: ready", boot_timeout)
    note(f"booted to the workload in {time.monotonic() - t0:.0f} s")


def touch_free_memory(g, leave_mib=96):
    """Allocates all but leave_mib of MemFree (so the VMM backs it), then frees it."""
    _, free_kb = g.meminfo()
    mib = free_kb // 1024 - leave_mib
    g.hamem(f"alloc {mib}")
    g.hamem("free")
    return mib


def selftest_results(g, rounds, timeout):
    g.wait_for(r"hyperalloc-selftest: done", timeout, consume=False, anywhere=True)
    got = re.findall(r"hyperalloc-selftest: round (\d+): allocated (\d+) of (\d+) MiB, installs (\d+), "
                     r"MemFree (\d+) -> (\d+) -> (\d+) kB, mismatches (\d+)", g.text())
    expect(len(got) == rounds, f"the kernel self-test ran {len(got)} of {rounds} rounds")
    for r in got:
        rnd, alloc, want, installs, before, holding, after, bad = map(int, r)
        expect(bad == 0, f"self-test round {rnd}: 0 mismatches")
        expect(alloc == want, f"self-test round {rnd}: allocated all {want} MiB")
        expect(before - holding >= alloc * 1024 * 0.9,
               f"self-test round {rnd}: MemFree fell by the {alloc} MiB held ({before} -> {holding} kB)")
    return [tuple(map(int, r)) for r in got]


# The machine as Linux sees it (this boot also covers the plain SMP boot checks).
BOOT_LINES = [r"smp: Brought up 1 node, 2 CPUs", r"PCI host bridge to bus 0000:00",
              r"pci 0000:00:00\.0: \[1b36:0008\]", r"Run /init as init process", r"VMM-GUEST: init started",
              r"VMM-GUEST: cpus 2", r"VMM-GUEST: MemTotal: +[0-9]+ kB", r"VMM-GUEST: kernel 6\.1",
              r"boot progress 0x41"]


def scenario_manual(args):
    g = Guest(args, "model=hyperalloc,size=0,period=1s,shrink_pagecache=on",
              "vmmtest.shell hyperalloc.selftest_mib=64 hyperalloc.selftest_rounds=2 "
              "hyperalloc.selftest_delay_ms=500",
              ["--disk", f"path={make_disk(args)},readonly=on"])
    try:
        boot(g, args.boot_timeout)
        for line in BOOT_LINES:
            g.wait_for(line, 5, consume=False, anywhere=True)
        note("ok: the kernel brought up 2 CPUs, found the PCI host bridge and ran /init")
        selftest_results(g, 2, 600)
        touched = touch_free_memory(g)
        total0, free0 = g.meminfo()
        rss0 = g.guest_rss_mib()
        note(f"touched {touched} MiB; MemTotal {total0} kB, MemFree {free0} kB, guest RAM RSS {rss0:.0f} MiB")

        shrink = 512
        t = time.monotonic()
        g.resize(shrink)
        note(f"shrink to {shrink} MiB took {time.monotonic() - t:.2f} s (API to actual)")
        total1, free1 = g.meminfo()
        rss1 = g.guest_rss_mib()
        expect(abs((free0 - free1) - shrink * 1024) <= 32 * 1024,
               f"MemFree fell by the balloon ({free0} -> {free1} kB, {(free0 - free1) / 1024:.0f} MiB)")
        expect(rss0 - rss1 >= shrink * 0.75,
               f"the VMM's RSS for guest RAM fell by most of it ({rss0:.0f} -> {rss1:.0f} MiB)")
        host_free = g.stats()["hyperalloc"]["guest_free_bytes"] // 1024
        expect(abs(host_free - free1) <= 16 * 1024,
               f"the host reads the same free memory from the shared counter ({host_free} kB)")
        stats = g.proc_stats()["DMA32"]
        expect(stats["hard_frames"] == shrink // 2, f"the guest's mirror shows {stats['hard_frames']} hard frames")

        g.hamem(f"alloc {free1 // 1024 - 160}")
        pagecache_shrink(g, shrink)
        g.hamem("free")

        # Allocate nearly all that is left: the free lists still hold the hard frames
        # (512 MiB of them), so the allocator meets them and must park them, never use
        # them (using one would make the host back it again: RSS would grow).
        _, free_kb = g.meminfo()
        held = free_kb // 1024 - 64
        g.hamem(f"alloc {held}")
        g.hamem("verify")
        rss2 = g.guest_rss_mib()
        expect(rss2 <= RAM_MIB - shrink + 48,
               f"allocating {held} MiB while shrunk touched no hard-reclaimed frame "
               f"(guest RAM RSS {rss2:.0f} MiB <= {RAM_MIB - shrink + 48})")
        parked = g.proc_stats()["DMA32"]["parked_total"]
        expect(parked > 0, f"the allocator met hard-reclaimed frames and parked {parked} of them")
        g.hamem("free")

        t = time.monotonic()
        g.resize(0)
        note(f"grow to 0 MiB took {time.monotonic() - t:.2f} s")
        _, free2 = g.meminfo()
        expect(abs(free2 - free0) <= 48 * 1024, f"MemFree came back ({free1} -> {free2} kB, was {free0})")
        before = g.proc_stats()["DMA32"]
        rss3 = g.guest_rss_mib()
        touch_free_memory(g)
        stats = g.proc_stats()["DMA32"]
        installs = stats["installs"] - before["installs"]
        rss4 = g.guest_rss_mib()
        expect(installs >= (shrink // 2) // 2,
               f"allocating the returned memory installed it ({installs} installs, "
               f"{stats['parked_total']} frames parked in all, {stats['install_failures']} install failures)")
        expect(rss4 - rss3 <= 2 * installs + 48,
               f"every returned frame the guest touched was installed first (RSS {rss3:.0f} -> {rss4:.0f} MiB, "
               f"{2 * installs} MiB installed)")
        expect(stats["install_failures"] == 0 and stats["parked_frames"] == 0,
               "no install failed and no frame stays parked")

        # Patterns hold while the host shrinks and grows concurrently.
        g.proc.stdin.write(b"stress 40 64\n")
        g.proc.stdin.flush()
        cycles, end = 0, time.monotonic() + 35
        while time.monotonic() < end:
            g.resize(256)
            g.resize(0)
            cycles += 1
        m = g.wait_for(r"^HAMEM: stress (\d+) cycles of 64 MiB in 40 s: mismatches (\d+)", 900)
        g.wait_for(r"^HAMEM: ok stress \(mismatches so far 0\)", 60)
        expect(int(m.group(2)) == 0 and int(m.group(1)) > 0,
               f"{m.group(1)} workload cycles during {cycles} shrink/grow cycles: 0 mismatches")

        g.finish(shell=True)
        bad = [l for l in g.text().splitlines() if re.search(r"hyperalloc: (install .* failed|.* freed twice|"
                                                              r".* taken but not free|tree .*)", l)]
        expect(not bad, "the guest's mirror never disagreed with the allocator" + (f": {bad[:3]}" if bad else ""))
    finally:
        g.kill()


def make_disk(args):
    path = os.path.join(args.work, "ha-pagecache.img")
    with open(path, "wb") as f:
        f.write(os.urandom(64 * MIB))
    return path


def pagecache_shrink(g, balloon_mib):
    """With the balloon at balloon_mib and little free memory, a larger target: the
    host asks the guest to drop its page cache (SHRINK_PAGECACHE), the guest drops it
    and notifies, the host retries."""
    g.hamem("read /dev/vda")
    _, free_kb = g.meminfo()
    # More than is free (and only whole free 2 MiB frames count): only page cache can
    # cover it. Not much more, or kswapd would evict the cache before the guest is asked.
    target = balloon_mib + free_kb // 1024 + 16
    target -= target % 2
    status, body = g.api.put("vm.resize-balloon", {"size": target * MIB})
    expect(status == 204, f"PUT vm.resize-balloon {target} MiB with {free_kb} kB free")
    m = g.wait_for(r"virtio_hyperalloc \S+: host asked to drop (\d+) pages of page cache: dropped (\d+)", 600)
    expect(int(m.group(2)) >= 8192, f"the guest dropped {int(m.group(2)) // 256} MiB of page cache "
                                    f"when asked for {int(m.group(1)) // 256} MiB")
    time.sleep(3)
    note(f"balloon at {g.stats()['actual_mib']} of {target} MiB after the page-cache drop")
    g.resize(balloon_mib)


def scenario_auto(args):
    period_s = 2
    # One vCPU: two 2-vCPU guests at once on a 2-core host (ctest -j2 beside the manual
    # scenario) crawl (every guest kernel instruction is emulated, so spinning vCPUs
    # wait for descheduled ones).
    g = Guest(args, f"model=hyperalloc,size=0,auto=on,period={period_s}s",
              "hyperalloc.selftest_mib=128 hyperalloc.selftest_rounds=3 hyperalloc.selftest_delay_ms=5000",
              cpus=1)
    try:
        boot(g, args.boot_timeout)
        rounds = selftest_results(g, 3, 900)
        expect(sum(r[3] for r in rounds[1:]) > 0,
               f"self-test rounds after the first installed what auto mode reclaimed: "
               f"{[r[3] for r in rounds]} installs")
        mib = 512
        rss_before = g.guest_rss_mib()
        g.hamem(f"alloc {mib}")
        g.hamem("verify")
        rss_held = g.guest_rss_mib()
        expect(rss_held - rss_before >= mib * 0.9,
               f"holding {mib} MiB backs it ({rss_before:.0f} -> {rss_held:.0f} MiB)")
        g.hamem("free")
        freed_at = time.monotonic()
        limit = 2 * period_s
        while True:
            rss = g.guest_rss_mib()
            elapsed = time.monotonic() - freed_at
            if rss_held - rss >= mib * 0.8 or elapsed > limit + 10:
                break
            time.sleep(0.1)
        expect(rss_held - rss >= mib * 0.8 and elapsed <= limit,
               f"freed memory left the VMM's RSS within two periods ({rss_held:.0f} -> {rss:.0f} MiB "
               f"in {elapsed:.1f} s, limit {limit} s)")
        installs0 = g.proc_stats()["DMA32"]["installs"]
        rss_low = g.guest_rss_mib()
        g.hamem(f"alloc {mib}")
        g.hamem("verify")
        installs = g.proc_stats()["DMA32"]["installs"] - installs0
        rss_high = g.guest_rss_mib()
        expect(installs >= (mib // 2) // 2, f"allocating it again installed {installs} frames")
        expect(rss_high - rss_low <= 2 * installs + 48,
               f"every reclaimed frame the guest touched was installed first (RSS {rss_low:.0f} -> "
               f"{rss_high:.0f} MiB, {2 * installs} MiB installed)")
        g.hamem("free")
        g.finish()
    finally:
        g.kill()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("scenario", choices=["manual", "auto"])
    p.add_argument("--vmm", required=True)
    p.add_argument("--guest-dir", required=True)
    p.add_argument("--work")
    p.add_argument("--boot-timeout", type=float, default=1800)
    args = p.parse_args()
    if not kvm_usable():
        print("SKIPPED: /dev/kvm not available")
        return 77
    args.work = args.work or tempfile.mkdtemp(prefix="vmm-ha-linux.")
    os.makedirs(args.work, exist_ok=True)
    t0 = time.monotonic()
    try:
        (scenario_manual if args.scenario == "manual" else scenario_auto)(args)
    except Fail as e:
        note(f"FAIL: {e}")
        return 1
    note(f"PASS ({args.scenario}) in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
