#!/usr/bin/env python3
"""Balloon soak: inflate/deflate cycles through the REST API while the test guest
writes and verifies memory patterns (docs/hardening.md).

    tests/soak/soak.py --vmm build/vmm --test-guest build/tests/guest/test_guest.elf \\
        --seconds 600 --cycles 1000

The VMM boots the test guest in mode `hyperalloc` (docs/test-guest.md: an LLFree
allocator over all guest RAM with a random working set of patterned blocks, every
block verified before it is freed and once a second while held; a frame the host took
or gave back wrongly reads as a MISMATCH) with the HyperAlloc balloon and the API
socket. Once the guest is ready, cycle i starts at i * seconds / cycles: PUT
vm.resize-balloon to a random size (a multiple of 2 MiB up to --max-balloon), then, half
a slot later, to 0. At the end the balloon goes back to 0 and the guest finishes its
workload and checks that the host and its allocator agree.

Fails (exit 1) on any mismatch or guest FAIL line, a VMM that dies or exits non-zero,
an API error, any growth of the VMM's open fds, or growth of its RSS (guest RAM
excluded, see vmm_probe.py) by more than --rss-tolerance-kib (default 1024 KiB: a leak
of 1 KiB per cycle over 1000 cycles fails; one-time set-up is excluded by taking the
start sample after the first --warmup cycles). Exit 77 without /dev/kvm.
"""
import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmm_probe import Api, fd_count, kvm_usable, rss_kib  # noqa: E402

MIB = 1 << 20


class SoakError(Exception):
    pass


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vmm", required=True)
    p.add_argument("--test-guest", required=True)
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--cycles", type=int, default=1000)
    p.add_argument("--memory-mib", type=int, default=1024, help="guest RAM (default 1024)")
    p.add_argument("--max-balloon-mib", type=int, default=512, help="largest random target (default 512)")
    p.add_argument("--hold-mib", type=int, default=256, help="the guest's working set (testguest.ha_hold)")
    p.add_argument("--warmup", type=int, default=10, help="cycles before the start sample (default 10)")
    p.add_argument("--rss-tolerance-kib", type=int, default=1024)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--vmm-arg", action="append", default=[],
                   help="extra VMM argument (repeatable), e.g. --vmm-arg=--seccomp --vmm-arg=false")
    p.add_argument("--keep", action="store_true", help="keep the work directory (VMM log)")
    return p.parse_args()


class Soak:
    def __init__(self, args):
        self.a = args
        self.work = tempfile.mkdtemp(prefix="vmm-soak.")
        self.log_path = os.path.join(self.work, "vmm.log")
        self.api = Api(os.path.join(self.work, "api.sock"))
        self.proc = None
        self.ram = args.memory_mib * MIB
        self.rng = random.Random(args.seed)

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def check_guest(self, text=None):
        text = self.log_text() if text is None else text
        bad = [l for l in text.splitlines() if "TESTGUEST: FAIL" in l or "MISMATCH" in l]
        if bad:
            raise SoakError("the guest reported: " + " | ".join(bad[:3]))

    @staticmethod
    def exit_error(rc, what):
        hint = " (SIGSYS: a seccomp filter refused a system call; try --vmm-arg=--seccomp --vmm-arg=false)" \
            if rc == -signal.SIGSYS else ""
        return SoakError(f"the VMM exited with {rc}{hint} {what}")

    def check_alive(self, what):
        if self.proc.poll() is not None:
            raise self.exit_error(self.proc.returncode, what)

    def wait_for(self, pattern, timeout):
        end = time.monotonic() + timeout
        while True:
            text = self.log_text()
            m = re.search(pattern, text, re.M)
            if m:
                return m
            self.check_guest(text)
            self.check_alive(f"before printing '{pattern}'")
            if time.monotonic() > end:
                raise SoakError(f"no '{pattern}' within {timeout:.0f} s")
            time.sleep(0.1)

    def resize(self, mib):
        status, body = self.api.put("vm.resize-balloon", {"size": mib * MIB})
        if status != 204:
            raise SoakError(f"PUT vm.resize-balloon {mib} MiB: {status} {body}")

    def actual_mib(self):
        status, body = self.api.get("vm.balloon-statistics")
        if status != 200:
            raise SoakError(f"GET vm.balloon-statistics: {status} {body}")
        return body["actual_mib"]

    def sample(self):
        """(own RSS KiB, guest RAM RSS KiB, fds) once the API connections have closed:
        the fewest fds of a few reads, so a connection thread still exiting is not a leak."""
        fds = None
        for _ in range(4):
            time.sleep(0.1)
            n = fd_count(self.proc.pid)
            fds = n if fds is None else min(fds, n)
        own, guest = rss_kib(self.proc.pid, self.ram)
        return own, guest, fds

    def start(self):
        guest_seconds = int(self.a.seconds) + 10  # the workload outlasts the cycles
        cmdline = (f"testguest.mode=hyperalloc testguest.ha_hold={self.a.hold_mib} "
                   f"testguest.seconds={guest_seconds}")
        argv = [self.a.vmm, "--kernel", self.a.test_guest, "--cmdline", cmdline, "--cpus", "boot=1",
                "--memory", f"size={self.a.memory_mib}M", "--balloon", "model=hyperalloc",
                "--api-socket", f"path={self.api.path}"] + self.a.vmm_arg
        print("soak: " + " ".join(argv), flush=True)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        end = time.monotonic() + 30
        while not self.api.answers():
            self.check_alive("before serving the API")
            if time.monotonic() > end:
                raise SoakError("the API socket did not answer within 30 s")
            time.sleep(0.05)
        self.wait_for(r"^HA: ready zones=", 60)
        self.wait_for(r"^HA: t=1s ", 30)

    def cycles(self):
        a = self.a
        slot = a.seconds / a.cycles
        t0 = time.monotonic()
        reached = late = 0
        start = None
        for i in range(a.cycles):
            if i == min(a.warmup, a.cycles - 1):
                start = self.sample()
                print(f"soak: start sample after {i} cycles: rss {start[0]} KiB (guest RAM {start[1]} KiB), "
                      f"fds {start[2]}", flush=True)
            begin = t0 + i * slot
            now = time.monotonic()
            if now < begin:
                time.sleep(begin - now)
            else:
                late += now - begin > slot
            mib = self.rng.randrange(1, a.max_balloon_mib // 2 + 1) * 2
            self.resize(mib)
            pause = begin + slot / 2 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            reached += self.actual_mib() == mib
            self.resize(0)
            if i % 50 == 0:
                self.check_guest()
                self.check_alive(f"in cycle {i}")
            if i and i % max(1, a.cycles // 10) == 0:
                own, guest, fds = self.sample()
                print(f"soak: {i} cycles in {time.monotonic() - t0:.1f} s: rss {own} KiB, guest RAM {guest} KiB, "
                      f"fds {fds}", flush=True)
        return start, reached, late, time.monotonic() - t0

    def finish(self):
        end = time.monotonic() + 10
        while self.actual_mib() != 0:
            if time.monotonic() > end:
                raise SoakError("the balloon did not return to 0 within 10 s")
            time.sleep(0.05)
        sample = self.sample()
        done = self.wait_for(r"^HA: done mismatches=(\d+)", self.a.seconds + 60)
        self.wait_for(r"^HA: consistent", 10)   # the guest's allocator and the host agree
        self.wait_for(r"^TESTGUEST: done", 30)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            raise SoakError("the VMM did not exit after the guest finished")
        if rc != 0:
            raise self.exit_error(rc, "at the end")
        return sample, int(done.group(1))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def main():
    args = parse_args()
    if not kvm_usable(os.environ.get("RUN_GUEST_KVM_DEVICE", "/dev/kvm")):
        print("SKIPPED: /dev/kvm not available")
        return 77
    if args.cycles < 1 or args.seconds <= 0 or args.max_balloon_mib < 2 or args.max_balloon_mib >= args.memory_mib:
        print("soak: FAIL: need cycles >= 1, seconds > 0, 2 <= max balloon < memory")
        return 2
    soak = Soak(args)
    ok = False
    try:
        soak.start()
        boot = soak.sample()
        print(f"soak: boot sample: rss {boot[0]} KiB (guest RAM {boot[1]} KiB), fds {boot[2]}", flush=True)
        start, reached, late, took = soak.cycles()
        end, mismatches = soak.finish()
        soak.check_guest()
        rss_growth, fd_growth = end[0] - start[0], end[2] - start[2]
        print(f"soak: summary cycles={args.cycles} seconds={took:.1f} reached_target={reached} late={late} "
              f"mismatches={mismatches} rss_kib start={start[0]} end={end[0]} ({rss_growth:+d}) "
              f"fds start={start[2]} end={end[2]} ({fd_growth:+d}) boot_rss_kib={boot[0]} boot_fds={boot[2]}",
              flush=True)
        problems = []
        if mismatches:
            problems.append(f"{mismatches} mismatches")
        if fd_growth > 0:
            problems.append(f"open fds grew by {fd_growth}")
        if rss_growth > args.rss_tolerance_kib:
            problems.append(f"RSS (guest RAM excluded) grew by {rss_growth} KiB > {args.rss_tolerance_kib} KiB")
        if reached == 0:
            problems.append("no cycle saw the balloon reach its target: the soak exercised nothing")
        if problems:
            raise SoakError("; ".join(problems))
        ok = True
        print("soak: PASS")
    except (SoakError, RuntimeError, OSError) as e:
        print(f"soak: FAIL: {e}")
        try:
            print("---- VMM output (last 40 lines) ----\n" + "\n".join(soak.log_text().splitlines()[-40:]))
        except OSError:
            pass
    finally:
        soak.stop()
        if args.keep or not ok:
            print(f"soak: work directory kept: {soak.work}")
        else:
            for name in os.listdir(soak.work):
                os.unlink(os.path.join(soak.work, name))
            os.rmdir(soak.work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
