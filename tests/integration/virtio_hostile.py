#!/usr/bin/env python3
"""virtio end to end: a hostile guest must not hurt the VMM (docs/hardening.md).

    virtio_hostile.py <vmm> <test_guest.elf> [rounds] [storm]

Boots the test guest in mode `virtio-hostile` (tests/guest/virtio_hostile*.c) with
virtio-blk on a fresh 8 MiB file, virtio-rng, the virtio-balloon (model=virtio) and the
API socket, 256 MiB. The guest runs `rounds` (default 3) rounds of descriptor loops,
chains longer than the queue, buffers outside RAM / in the MMIO hole / on the device's
registers, giant and wrapping lengths, bad indirect tables, avail indices far ahead,
bad queue set-ups, malformed requests, balloon PFNs out of range and repeated, register
abuse, a notify storm and a reset storm of `storm` (default 50) per device, pausing 2 s
after each round. Asserts:
  * every guest check passed (`TESTGUEST: hostile ok`, no FAIL line), the VMM answered
    the API during the pauses and exited 0 after the guest's reset;
  * bounded logging: every WARN/ERROR line comes from one of the six rate limiters
    the attacks can reach (virtio-blk, virtio-rng, balloon devices and their three
    virtio-mmio transports: log::RateLimiter, 10 lines per 5 s window, a new window
    only after 5 s) or is one of at most 3 start-up lines; so each source has at most
    10 * (floor(T / 5) + 1) lines over the VMM's lifetime T and at most 20 in any 5 s,
    while the guest's attacks (hundreds per round) would log far more unlimited;
  * flat VMM: open fds equal, and RSS without guest RAM (vmm_probe.py) within 256 KiB,
    between the pause after round 1 and the pause after the last round (rounds 2.. repeat
    every attack, so a per-attack leak of a few hundred bytes shows).
Exit 77 without /dev/kvm.
"""
import os
import re
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "soak"))
from vmm_probe import Api, fd_count, kvm_usable, rss_kib  # noqa: E402

NAME = "virtio_hostile"
RAM = 256 << 20
RSS_TOLERANCE_KIB = 256
LIMITER_BURST, LIMITER_PERIOD_S = 10, 5.0        # log::RateLimiter's defaults (common/log.h)
STARTUP_LINES = 3                                # e.g. the kvm_pvm notice
LOG_LINE = re.compile(r"^vmm \[\s*([0-9.]+)\] (WARN|ERROR): (.*)$")
SOURCES = [("virtio-blk", re.compile(r"^virtio-blk ")), ("virtio-rng", re.compile(r"^virtio-rng:")),
           ("balloon", re.compile(r"^balloon")),
           ("virtio-mmio type 2", re.compile(r"^virtio-mmio \(type 2\)")),
           ("virtio-mmio type 4", re.compile(r"^virtio-mmio \(type 4\)")),
           ("virtio-mmio type 5", re.compile(r"^virtio-mmio \(type 5\)"))]


class Fail(Exception):
    pass


def note(msg):
    print(f"{NAME}: {msg}", flush=True)


def log_bound_problems(lines, lifetime_s):
    """Checks the WARN/ERROR lines against the rate limiters' budget; returns problems."""
    per_source = {name: [] for name, _ in SOURCES}
    other = []
    for t, level, msg in lines:
        for name, pattern in SOURCES:
            if pattern.match(msg):
                per_source[name].append(t)
                break
        else:
            other.append(f"{level}: {msg}")
    budget = LIMITER_BURST * (int(lifetime_s // LIMITER_PERIOD_S) + 1)
    problems = []
    for name, times in per_source.items():
        worst = max((sum(1 for u in times if t <= u < t + LIMITER_PERIOD_S) for t in times), default=0)
        note(f"log: {name}: {len(times)} lines (budget {budget}), at most {worst} in any 5 s (limit "
             f"{2 * LIMITER_BURST})")
        if len(times) > budget or worst > 2 * LIMITER_BURST:
            problems.append(f"{name} logged {len(times)} lines, {worst} in 5 s (budget {budget}, "
                            f"{2 * LIMITER_BURST} per 5 s)")
    if len(other) > STARTUP_LINES:
        problems.append(f"{len(other)} WARN/ERROR lines from no rate-limited source: {other[:3]}")
    return problems, budget


def main():
    if len(sys.argv) < 3:
        print(f"usage: {sys.argv[0]} <vmm> <test_guest.elf> [rounds] [storm]", file=sys.stderr)
        return 2
    vmm, guest = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    storm = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    if not kvm_usable(os.environ.get("RUN_GUEST_KVM_DEVICE", "/dev/kvm")):
        print("SKIPPED: /dev/kvm not available")
        return 77
    if rounds < 2:
        print(f"{NAME}: FAIL: need at least 2 rounds (the first is the baseline)")
        return 2
    with tempfile.TemporaryDirectory(prefix="vmm-hostile.") as work:
        return run(vmm, guest, rounds, storm, work)


def run(vmm, guest, rounds, storm, work):
    disk, log_path = os.path.join(work, "disk.img"), os.path.join(work, "vmm.log")
    with open(disk, "wb") as f:
        f.truncate(8 << 20)
    api = Api(os.path.join(work, "api.sock"))
    argv = [vmm, "--kernel", guest, "--cmdline",
            f"testguest.mode=virtio-hostile testguest.rounds={rounds} testguest.pause_s=2 testguest.storm={storm}",
            "--cpus", "boot=1", "--memory", f"size={RAM >> 20}M", "--disk", f"path={disk},id=hostile", "--rng",
            "--balloon", "model=virtio,size=0", "--api-socket", f"path={api.path}"]
    note(" ".join(argv))
    started = time.monotonic()
    deadline = started + 150
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def text():
        with open(log_path, errors="replace") as f:
            return f.read()

    def wait_for(pattern):
        while True:
            t = text()
            if re.search(pattern, t, re.M):
                return
            if "TESTGUEST: FAIL" in t:
                raise Fail("the guest reported a failure")
            if proc.poll() is not None:
                raise Fail(f"the VMM exited ({proc.returncode}) before printing '{pattern}'")
            if time.monotonic() > deadline:
                raise Fail(f"no '{pattern}' in time")
            time.sleep(0.05)

    def sample(what):
        # Inside the guest's 2 s pause. The API answers, then the fds are counted once
        # its connection is gone (the fewest of a few reads: the server's connection
        # thread closes its socket just after answering).
        status, info = api.get("vm.info")
        if status != 200 or info.get("state") != "Running":
            raise Fail(f"vm.info {what}: {status} {info}")
        fds = None
        for _ in range(4):
            time.sleep(0.1)
            fds = min(fds, fd_count(proc.pid)) if fds is not None else fd_count(proc.pid)
        own, guest_kib = rss_kib(proc.pid, RAM)
        note(f"{what}: rss {own} KiB (guest RAM {guest_kib} KiB), fds {fds}")
        return own, fds

    try:
        wait_for(rf"^TESTGUEST: hostile round 1 of {rounds} done")
        rss1, fds1 = sample("after round 1")
        wait_for(rf"^TESTGUEST: hostile round {rounds} of {rounds} done")
        rss2, fds2 = sample(f"after round {rounds}")
        wait_for(r"^TESTGUEST: done")
        try:
            rc = proc.wait(max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise Fail("the VMM did not exit after the guest's reset")
        lifetime = time.monotonic() - started
        out = text()
        problems = []
        if rc != 0:
            problems.append(f"VMM exit status {rc}" + (" (SIGSYS: seccomp)" if rc == -31 else ""))
        fails = [l for l in out.splitlines() if "TESTGUEST: FAIL" in l]
        if fails or not re.search(r"^TESTGUEST: hostile ok$", out, re.M):
            problems.append(f"guest checks failed: {fails[:5]}")
        summary = re.search(r"^TESTGUEST: hostile summary rounds=\d+ attacks=(\d+) checks=(\d+) passed=(\d+)", out,
                            re.M)
        if not summary:
            raise Fail("no summary line from the guest")
        attacks = int(summary.group(1))
        lines = [(float(m.group(1)), m.group(2), m.group(3)) for m in map(LOG_LINE.match, out.splitlines()) if m]
        log_problems, budget = log_bound_problems(lines, lifetime)
        problems += log_problems
        note(f"{attacks} attacks, {summary.group(2)} checks ({summary.group(3)} passed), {len(lines)} WARN/ERROR "
             f"lines in {lifetime:.1f} s (budget {budget} per source, 6 sources)")
        if attacks <= len(SOURCES) * budget:
            problems.append(f"only {attacks} attacks: not enough to show the rate limiting")
        if fds2 != fds1:
            problems.append(f"open fds changed from {fds1} to {fds2}")
        if rss2 - rss1 > RSS_TOLERANCE_KIB:
            problems.append(f"RSS without guest RAM grew by {rss2 - rss1} KiB (> {RSS_TOLERANCE_KIB})")
        note(f"rss {rss1} -> {rss2} KiB ({rss2 - rss1:+d}, tolerance {RSS_TOLERANCE_KIB}), fds {fds1} -> {fds2}")
        if problems:
            raise Fail("; ".join(problems))
    except (Fail, OSError, RuntimeError) as e:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        tail = text().splitlines()
        print("---- VMM output (FAIL lines and last 40 lines) ----")
        print("\n".join([l for l in tail if "FAIL" in l][:20] + ["..."] + tail[-40:]))
        print(f"{NAME}: FAIL: {e}")
        return 1
    note("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
