#!/usr/bin/env python3
"""HyperAlloc against virtio-balloon, end to end, with the test guest (docs/benchmarks.md).

  bench/hyperalloc_bench.py --vmm build/vmm --test-guest build/tests/guest/test_guest.elf \
      [--ram-gib 3] [--reclaim-gib 2] [--runs 3] [--install-mib 512]

Every run boots fresh VMs with all guest RAM populated first (--memory prefault=on,
and the guests touch it too), so both balloons reclaim *touched* memory:
  * HyperAlloc reclaim: PUT vm.resize-balloon <reclaim> while the guest runs its
    LLFree workload (mode hyperalloc, 64 MiB working set). Timed twice: the API
    round trip (the resize is applied synchronously on the VMM thread: hard reclaim,
    the guest's free counter, merged discards) and the device's own "in T ms".
  * HyperAlloc return: PUT vm.resize-balloon 0, same two timings. Returned frames are
    populated lazily, by installs.
  * virtio-balloon reclaim (below the 3 GiB hole only: the driver balloons pages from
    8 MiB up to the hole, so keep --ram-gib <= 3): the test guest's balloon-follow driver (polls the target
    every ~50 ms, sends ascending 4 KiB PFNs, 256 per descriptor, which is the best
    case for the device's range merging). Timed from the PUT to the VMM's log line
    "guest reached the target".
  * Install throughput: mode hyperalloc-bench (auto=on soft-reclaims all free memory,
    then the guest allocates --install-mib in 2 MiB blocks, each needing an install,
    timed by the guest's TSC), once with install=vcpu and once with install=worker.
Each figure is checked: RSS must fall by >= 90% of the reclaimed size, the guest must
report no failure. Ratios are computed within this run. Exit status 1 if anything
did not happen as it should.

With --linux-guest DIR (a build-guest.sh output: vmlinux, initramfs.cpio.gz) the same
reclaim and return are measured on our Linux guest kernel instead (docs/hyperalloc-linux.md):
HyperAlloc through its Linux driver, the virtio-balloon through Linux's virtio_balloon
driver (4 KiB pages), both guests idle in the initramfs workload (hamem) with all RAM
prefaulted. No install runs in this mode.
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
GIB = 1 << 30


class Vmm:
    def __init__(self, vmm, args, workdir, name, stdin=subprocess.DEVNULL):
        self.sock = os.path.join(workdir, f"{name}.sock")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.log = open(self.log_path, "w+b")
        self.proc = subprocess.Popen([vmm, "-v", *args, "--api-socket", f"path={self.sock}"],
                                     stdin=stdin, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: the VMM did not open its API socket:\n{self.text()[-2000:]}")
            time.sleep(0.02)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_for(self, pattern, timeout, count=1):
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if re.search(r"FAIL|MISMATCH|Kernel panic|HAMEM: mismatch", text):
                raise RuntimeError(f"the guest reported a failure:\n{text[-2000:]}")
            found = regex.findall(text)
            if len(found) >= count:
                return found[count - 1]
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no '{pattern}' within {timeout} s:\n{text[-2000:]}")
            time.sleep(0.002)

    def request(self, method, path, body=None):
        """One HTTP/1.1 request over the Unix socket; returns (status, body, seconds)."""
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} /api/v1/{path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.sock)
            start = time.perf_counter()
            s.sendall(head + payload)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            elapsed = time.perf_counter() - start
        status = int(data.split(b" ", 2)[1])
        return status, data.split(b"\r\n\r\n", 1)[-1], elapsed

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.request("PUT", "vmm.shutdown")
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def check_rss_drop(name, before, after, size):
    dropped = (before - after) * 1024
    if dropped < 0.9 * size:
        raise RuntimeError(f"{name}: VmRSS fell by {dropped / MIB:.0f} MiB, expected >= {0.9 * size / MIB:.0f}")
    return dropped


def resize(vm, size):
    status, body, seconds = vm.request("PUT", "vm.resize-balloon", {"size": size})
    if status != 204:
        raise RuntimeError(f"resize to {size}: HTTP {status} {body!r}")
    return seconds


def hyperalloc_run(a, workdir, i):
    vm = Vmm(a.vmm, ["--kernel", a.test_guest, "--cpus", "boot=1", "--memory", f"size={a.ram_gib}G,prefault=on",
                     "--balloon", "model=hyperalloc", "--cmdline",
                     "testguest.mode=hyperalloc testguest.ha_hold=64"], workdir, f"ha{i}")
    try:
        vm.wait_for(r"^HA: ready", 120)
        vm.wait_for(r"^HA: t=\d+s", 60)
        before = vm.rss_kib()
        size = a.reclaim_gib * GIB
        api_reclaim = resize(vm, size)
        host_reclaim = float(vm.wait_for(r"hyperalloc: balloon at \d+ MiB of %d MiB target \(\d+ frames hard-reclaimed in ([0-9.]+) ms" % (size // MIB), 10))
        dropped = check_rss_drop("hyperalloc", before, vm.rss_kib(), size)
        api_return = resize(vm, 0)
        host_return = float(vm.wait_for(r"hyperalloc: balloon at 0 MiB of 0 MiB target \(\d+ frames returned in ([0-9.]+) ms", 10))
        vm.wait_for(r"^HA: t=\d+s", 60, count=3)  # the guest keeps running, patterns intact
        return dict(api_reclaim=api_reclaim, host_reclaim=host_reclaim / 1e3, api_return=api_return,
                    host_return=host_return / 1e3, dropped=dropped)
    finally:
        vm.stop()


def virtio_run(a, workdir, i):
    vm = Vmm(a.vmm, ["--kernel", a.test_guest, "--cpus", "boot=1", "--memory", f"size={a.ram_gib}G,prefault=on",
                     "--balloon", "model=virtio,size=0", "--cmdline",
                     "testguest.mode=balloon-follow testguest.follow_s=600"], workdir, f"vb{i}")
    try:
        vm.wait_for(r"^TESTGUEST: balloon-follow for", 120)
        before = vm.rss_kib()
        size = a.reclaim_gib * GIB
        start = time.perf_counter()
        resize(vm, size)
        vm.wait_for(r"balloon: guest reached the target of %d pages" % (size // 4096), 600)
        reclaim = time.perf_counter() - start
        dropped = check_rss_drop("virtio-balloon", before, vm.rss_kib(), size)
        return dict(reclaim=reclaim, dropped=dropped)
    finally:
        vm.stop()


def install_run(a, workdir, path):
    vm = Vmm(a.vmm, ["--kernel", a.test_guest, "--cpus", "boot=1", "--memory", f"size={a.ram_gib}G",
                     "--balloon", f"model=hyperalloc,auto=on,period=1s,install={path}", "--cmdline",
                     f"testguest.mode=hyperalloc-bench testguest.ha_bench_mib={a.install_mib} testguest.wait_s=20"],
             workdir, f"inst-{path}")
    try:
        line = vm.wait_for(r"^(HA-BENCH installs=\d+ ms=[0-9.]+ gib_per_s=[0-9.]+)", 300)
        vm.wait_for(r"^HA: done mismatches=0", 120)
        n = int(re.search(r"installs=(\d+)", line).group(1))
        if n != a.install_mib // 2:
            raise RuntimeError(f"install={path}: {n} installs, expected {a.install_mib // 2}")
        return float(re.search(r"gib_per_s=([0-9.]+)", line).group(1))
    finally:
        vm.stop()


def linux_args(a, balloon):
    g = a.linux_guest
    return ["--kernel", os.path.join(g, "vmlinux"), "--initramfs", os.path.join(g, "initramfs.cpio"),
            "--cpus", "boot=1", "--memory", f"size={a.ram_gib}G,prefault=on", "--balloon", balloon,
            "--cmdline", "console=ttyS0 reboot=k panic=1 vmmtest.hamem"]


def hyperalloc_linux_run(a, workdir, i):
    vm = Vmm(a.vmm, linux_args(a, "model=hyperalloc"), workdir, f"lha{i}", stdin=subprocess.PIPE)
    try:
        vm.wait_for(r"virtio_hyperalloc \S+: ready", a.boot_timeout)
        vm.wait_for(r"^HAMEM: ready", a.boot_timeout)
        before = vm.rss_kib()
        size = linux_reclaim_bytes(a)
        api_reclaim = resize(vm, size)
        host_reclaim = float(vm.wait_for(r"hyperalloc: balloon at \d+ MiB of %d MiB target \(\d+ frames hard-reclaimed in ([0-9.]+) ms" % (size // MIB), 10))
        dropped = check_rss_drop("hyperalloc (Linux)", before, vm.rss_kib(), size)
        api_return = resize(vm, 0)
        host_return = float(vm.wait_for(r"hyperalloc: balloon at 0 MiB of 0 MiB target \(\d+ frames returned in ([0-9.]+) ms", 10))
        return dict(api_reclaim=api_reclaim, host_reclaim=host_reclaim / 1e3, api_return=api_return,
                    host_return=host_return / 1e3, dropped=dropped)
    finally:
        vm.stop()


def virtio_linux_run(a, workdir, i):
    vm = Vmm(a.vmm, linux_args(a, "model=virtio,size=0"), workdir, f"lvb{i}", stdin=subprocess.PIPE)
    try:
        vm.wait_for(r"^HAMEM: ready", a.boot_timeout)
        before = vm.rss_kib()
        size = linux_reclaim_bytes(a)
        start = time.perf_counter()
        resize(vm, size)
        vm.wait_for(r"balloon: guest reached the target of %d pages" % (size // 4096), a.boot_timeout)
        reclaim = time.perf_counter() - start
        dropped = check_rss_drop("virtio-balloon (Linux)", before, vm.rss_kib(), size)
        start = time.perf_counter()
        resize(vm, 0)
        vm.wait_for(r"balloon: guest reached the target of 0 pages", a.boot_timeout)
        return dict(reclaim=reclaim, ret=time.perf_counter() - start, dropped=dropped)
    finally:
        vm.stop()


def linux_reclaim_bytes(a):
    return a.reclaim_mib * MIB if a.reclaim_mib else a.reclaim_gib * GIB


def linux_main(a):
    ha, vb = [], []
    with tempfile.TemporaryDirectory(prefix="hyperalloc_bench.") as workdir:
        for i in range(a.runs):
            ha.append(hyperalloc_linux_run(a, workdir, i))
            vb.append(virtio_linux_run(a, workdir, i))
            print(f"run {i + 1}/{a.runs} (Linux guest): hyperalloc reclaim api {ha[-1]['api_reclaim'] * 1e3:.2f} ms "
                  f"(device {ha[-1]['host_reclaim'] * 1e3:.3f} ms), return api {ha[-1]['api_return'] * 1e3:.2f} ms "
                  f"(device {ha[-1]['host_return'] * 1e3:.3f} ms); virtio-balloon reclaim {vb[-1]['reclaim'] * 1e3:.0f} ms, "
                  f"return {vb[-1]['ret'] * 1e3:.0f} ms", flush=True)
    med = lambda xs: statistics.median(xs)
    gib = linux_reclaim_bytes(a) / GIB
    rates = {
        "HyperAlloc reclaim, API round trip": gib / med([r["api_reclaim"] for r in ha]),
        "HyperAlloc reclaim, device time": gib / med([r["host_reclaim"] for r in ha]),
        "HyperAlloc return, API round trip": gib / med([r["api_return"] for r in ha]),
        "HyperAlloc return, device time": gib / med([r["host_return"] for r in ha]),
        "virtio-balloon reclaim (PUT to target reached)": gib / med([r["reclaim"] for r in vb]),
        "virtio-balloon return (PUT to target reached)": gib / med([r["ret"] for r in vb]),
    }
    print(f"\nmedians of {a.runs} runs, Linux guest, {a.ram_gib} GiB, {gib * 1024:.0f} MiB reclaimed "
          f"(prefaulted memory):")
    print("| figure | GiB/s |\n| --- | --- |")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.4g} |")
    vb_rec = rates["virtio-balloon reclaim (PUT to target reached)"]
    vb_ret = rates["virtio-balloon return (PUT to target reached)"]
    print(f"\nratios (same run): HyperAlloc/virtio-balloon reclaim "
          f"{rates['HyperAlloc reclaim, API round trip'] / vb_rec:.1f}x (API round trip), "
          f"return {rates['HyperAlloc return, API round trip'] / vb_ret:.1f}x")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vmm", required=True)
    p.add_argument("--test-guest")
    p.add_argument("--linux-guest", help="measure the Linux guest kernel in this build-guest.sh output folder")
    p.add_argument("--boot-timeout", type=float, default=1800)
    p.add_argument("--reclaim-mib", type=int, help="Linux guest: reclaim this much instead of --reclaim-gib")
    p.add_argument("--ram-gib", type=int, default=3)
    p.add_argument("--reclaim-gib", type=int, default=2)
    p.add_argument("--install-mib", type=int, default=512)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    if (a.reclaim_mib * MIB if a.reclaim_mib else a.reclaim_gib * GIB) >= a.ram_gib * GIB:
        p.error("the reclaimed size must be smaller than --ram-gib")
    if a.linux_guest:
        return linux_main(a)
    if not a.test_guest:
        p.error("--test-guest or --linux-guest is required")

    ha, vb, inst = [], [], {"vcpu": [], "worker": []}
    with tempfile.TemporaryDirectory(prefix="hyperalloc_bench.") as workdir:
        for i in range(a.runs):  # interleaved, so host load hits every variant alike
            ha.append(hyperalloc_run(a, workdir, i))
            vb.append(virtio_run(a, workdir, i))
            for path in inst:
                inst[path].append(install_run(a, workdir, path))
            print(f"run {i + 1}/{a.runs}: hyperalloc reclaim api {ha[-1]['api_reclaim'] * 1e3:.2f} ms "
                  f"(device {ha[-1]['host_reclaim'] * 1e3:.3f} ms), return api {ha[-1]['api_return'] * 1e3:.2f} ms "
                  f"(device {ha[-1]['host_return'] * 1e3:.3f} ms); virtio-balloon reclaim {vb[-1]['reclaim'] * 1e3:.0f} ms; "
                  f"install vcpu {inst['vcpu'][-1]:.2f} GiB/s, worker {inst['worker'][-1]:.2f} GiB/s", flush=True)

    med = lambda xs: statistics.median(xs)
    gib = a.reclaim_gib
    ha_api = gib / med([r["api_reclaim"] for r in ha])
    ha_dev = gib / med([r["host_reclaim"] for r in ha])
    ha_ret_api = gib / med([r["api_return"] for r in ha])
    ha_ret_dev = gib / med([r["host_return"] for r in ha])
    vb_rate = gib / med([r["reclaim"] for r in vb])
    iv, iw = med(inst["vcpu"]), med(inst["worker"])
    print(f"\nmedians of {a.runs} runs, {a.ram_gib} GiB guest, {gib} GiB reclaimed (touched memory):")
    print(f"| figure | GiB/s |\n| --- | --- |")
    print(f"| HyperAlloc reclaim, API round trip | {ha_api:.1f} |")
    print(f"| HyperAlloc reclaim, device time | {ha_dev:.1f} |")
    print(f"| HyperAlloc return, API round trip | {ha_ret_api:.1f} |")
    print(f"| HyperAlloc return, device time | {ha_ret_dev:.1f} |")
    print(f"| virtio-balloon reclaim (PUT to target reached) | {vb_rate:.2f} |")
    print(f"| install, vCPU thread | {iv:.2f} |")
    print(f"| install, worker thread | {iw:.2f} |")
    print(f"\nratios: HyperAlloc/virtio-balloon reclaim {ha_api / vb_rate:.1f}x (API round trip), "
          f"{ha_dev / vb_rate:.1f}x (device time); install vcpu/worker {iv / iw:.2f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as e:
        print(f"hyperalloc_bench: FAIL: {e}", file=sys.stderr)
        sys.exit(1)
