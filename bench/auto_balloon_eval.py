#!/usr/bin/env python3
"""Automatic ballooning, evaluated (docs/auto-balloon-eval.md): two VMs with opposite
memory phases on a small host, with --balloon ...,auto=off and auto=on.

  sudo bench/auto_balloon_eval.py --vmm build/vmm --test-guest build/tests/guest/test_guest.elf \
      [--out docs/auto-balloon-eval] [--modes off,on] [--limit-mib 2304] [--ram-mib 1536] \
      [--hi-mib 1408] [--lo-mib 128] [--phase-s 30] [--phases 4] [--passes 4] [--ramp-s 15]
      [--auto KEY=VALUE,...]

The "small host" is real, not simulated: both VMMs run in a cgroup-v1 memory cgroup
limited to --limit-mib, with swap available (a swap file is added for the run when
the host has none, and removed afterwards). When the two VMs together touch more than
the limit the kernel reclaims: it swaps guest memory out, and the stalls show as real
memory pressure (PSI) in the VMMs' cgroup-v2 group, whose memory.pressure the
controller watches (psi=cgroup, with a PSI trigger). The rest of the host is never
short of memory: the run stops if the host's MemAvailable falls below --min-avail-mib.

Each VM (test guest, mode balloon-follow with the phase workload, virtio-balloon with
statistics every second, guest RAM without transparent huge pages: with THP this
kernel's memcg reclaim did not swap the guests' huge pages out in time and the cgroup
OOM-killed a VMM instead) alternates --hi-mib and --lo-mib working sets, VM B in the
opposite order of VM A; a working set that grows does so over --ramp-s seconds, then
each phase writes its working set --passes times (checking every page) and lasts at
least --phase-s seconds. The guest reports its elapsed time,
the time its work took, and its allocation stalls (waits for memory the balloon
held). The host is sampled every 0.5 s: VmRSS and VmSwap of each VMM, the cgroup's
usage, MemAvailable, pswpin/pswpout, the cgroup's PSI, and both balloons' target and
actual size. Output in --out: <mode>.csv (samples), <mode>-a.log/<mode>-b.log (VMM
and guest output), summary.md (the table) and auto-balloon-eval.png (gnuplot).
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20
NAME = "vmm-auto-balloon-eval"
V1_MEMORY = "/sys/fs/cgroup/memory"


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def meminfo_kib(key):
    m = re.search(rf"^{key}:\s+(\d+) kB", read("/proc/meminfo"), re.M)
    return int(m.group(1)) if m else 0


def vmstat(key):
    m = re.search(rf"^{key} (\d+)", read("/proc/vmstat"), re.M)
    return int(m.group(1)) if m else 0


def cgroup2_root():
    for line in read("/proc/self/mountinfo").splitlines():
        fields = line.split(" - ")
        if len(fields) == 2 and fields[1].split()[0] == "cgroup2":
            return line.split()[4]
    raise SystemExit("no cgroup2 mount: the VMMs' PSI needs a cgroup-v2 group")


class Swap:
    """Swap for the run: a swap file when the host has less than `mib`."""

    def __init__(self, mib, workdir):
        self.swapfile = None
        if meminfo_kib("SwapTotal") < mib * 1024:
            self.swapfile = os.path.join(workdir, f"{NAME}.swap")
            subprocess.run(["fallocate", "-l", f"{mib}M", self.swapfile], check=True)
            os.chmod(self.swapfile, 0o600)
            subprocess.run(["mkswap", self.swapfile], check=True, stdout=subprocess.DEVNULL)
            subprocess.run(["swapon", self.swapfile], check=True)

    def close(self):
        if self.swapfile:
            subprocess.run(["swapoff", self.swapfile], check=False)
            os.unlink(self.swapfile)


class SmallHost:
    """One run's memory cgroup (v1, with the limit) and v2 group (PSI). Fresh groups per
    run: a group's PSI averages would carry the previous run's pressure over."""

    def __init__(self, limit_mib, mode):
        self.v1 = os.path.join(V1_MEMORY, f"{NAME}-{mode}")
        self.v2 = os.path.join(cgroup2_root(), f"{NAME}-{mode}")
        for path in (self.v1, self.v2):
            if os.path.isdir(path):
                os.rmdir(path)  # left over from an interrupted run (empty, or this fails loudly)
            os.mkdir(path)
        write(os.path.join(self.v1, "memory.limit_in_bytes"), str(limit_mib * MIB))
        write(os.path.join(self.v1, "memory.swappiness"), "60")

    def usage(self):
        return int(read(os.path.join(self.v1, "memory.usage_in_bytes")))

    def psi(self):
        """(some avg10, some total µs) of the group's memory.pressure."""
        m = re.search(r"^some avg10=([\d.]+) .* total=(\d+)", read(os.path.join(self.v2, "memory.pressure")), re.M)
        return float(m.group(1)), int(m.group(2))

    def wrap(self, argv):
        """argv run inside both groups (the shell joins them, then execs)."""
        join = (f"echo $$ > {self.v1}/cgroup.procs && echo $$ > {self.v2}/cgroup.procs && exec \"$@\"")
        return ["sh", "-c", join, "sh", *argv]

    def close(self):
        for path in (self.v1, self.v2):
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except OSError:
                    time.sleep(0.1)


class Vm:
    def __init__(self, host, vmm, guest, name, args, outdir, sockdir):
        self.name = name
        self.sock = os.path.join(sockdir, f"{name}.sock")
        self.log_path = os.path.join(outdir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        argv = [vmm, "-v", "--kernel", guest, *args, "--api-socket", f"path={self.sock}"]
        self.proc = subprocess.Popen(host.wrap(argv), stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: no API socket:\n{self.text()[-2000:]}")
            time.sleep(0.02)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def status_kib(self, key):
        try:
            m = re.search(rf"^{key}:\s+(\d+) kB", read(f"/proc/{self.proc.pid}/status"), re.M)
            return int(m.group(1)) if m else 0
        except OSError:
            return 0

    def balloon(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(self.sock)
                s.sendall(b"GET /api/v1/vm.balloon-statistics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            body = json.loads(data.split(b"\r\n\r\n", 1)[1])
            # After the guest ended the VMM answers 404 {"error": ...}.
            return body if "target_mib" in body else None
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


def guest_results(text):
    m = re.search(r"TESTGUEST: phases done elapsed_ms=(\d+) work_ms=(\d+) stall_ms=(\d+) stalls=(\d+)", text)
    if not m:
        return None
    phases = [dict(zip(("k", "mib", "work", "stall", "stalls", "ms"), map(int, p))) for p in re.findall(
        r"TESTGUEST: phase (\d+) done ws=(\d+) MiB work_ms=(\d+) stall_ms=(\d+) stalls=(\d+) extra_passes=\d+ "
        r"phase_ms=(\d+)", text)]
    return {"elapsed_ms": int(m.group(1)), "work_ms": int(m.group(2)), "stall_ms": int(m.group(3)),
            "stalls": int(m.group(4)), "phases": phases,
            "hi_work_ms": sum(p["work"] for p in phases if p["mib"] >= 512)}


def run_mode(a, mode, host):
    phases_a = ",".join(f"{a.hi_mib if k % 2 == 0 else a.lo_mib}:{a.phase_s}" for k in range(a.phases))
    phases_b = ",".join(f"{a.lo_mib if k % 2 == 0 else a.hi_mib}:{a.phase_s}" for k in range(a.phases))
    balloon = "model=virtio,size=0,stats_polling_interval_s=1"
    if mode == "on":
        balloon += ",auto=on,psi=cgroup," + a.auto
    vms = []
    samples = []
    swap0 = (vmstat("pswpin"), vmstat("pswpout"))
    psi0 = host.psi()[1]
    start = time.monotonic()
    try:
        for name, phases in (("a", phases_a), ("b", phases_b)):
            cmdline = (f"testguest.mode=balloon-follow testguest.phases={phases} testguest.passes={a.passes} "
                       f"testguest.ramp_s={a.ramp_s}")
            vms.append(Vm(host, a.vmm, a.test_guest, f"{mode}-{name}",
                          ["--cpus", "boot=1", "--memory", f"size={a.ram_mib}M,thp=off", "--cmdline", cmdline,
                           "--balloon", balloon], a.out, a.sockdir))
        deadline = start + a.phases * a.phase_s * 4 + 120
        while True:
            t = time.monotonic() - start
            stats = [vm.balloon() for vm in vms]
            avail = meminfo_kib("MemAvailable")
            row = {"t": round(t, 2), "rss_a": vms[0].status_kib("VmRSS") / 1024,
                   "rss_b": vms[1].status_kib("VmRSS") / 1024, "swap_a": vms[0].status_kib("VmSwap") / 1024,
                   "swap_b": vms[1].status_kib("VmSwap") / 1024, "cgroup_mib": host.usage() / MIB,
                   "memavail_mib": avail / 1024, "pswpin": vmstat("pswpin") - swap0[0],
                   "pswpout": vmstat("pswpout") - swap0[1], "psi_some_avg10": host.psi()[0]}
            for name, s in zip("ab", stats):
                row[f"target_{name}"] = s["target_mib"] if s else "NaN"
                row[f"actual_{name}"] = s["actual_mib"] if s else "NaN"
            samples.append(row)
            if avail < a.min_avail_mib * 1024:
                raise RuntimeError(f"host MemAvailable {avail // 1024} MiB < {a.min_avail_mib} MiB: stopped")
            if all(vm.proc.poll() is not None for vm in vms):
                break
            if any(re.search(r"TESTGUEST: FAIL", vm.text()) for vm in vms):
                raise RuntimeError("a guest failed:\n" + "\n".join(vm.text()[-1500:] for vm in vms))
            if time.monotonic() > deadline:
                raise RuntimeError("the guests did not finish in time")
            time.sleep(0.5)
        results = {}
        for vm in vms:
            r = guest_results(vm.text())
            if r is None or vm.proc.returncode != 0:
                raise RuntimeError(f"{vm.name}: exit {vm.proc.returncode}, no result:\n{vm.text()[-2000:]}")
            text = vm.text()
            r["inflates"] = len(re.findall(r"auto-balloon t=\S+ inflate:", text))
            r["deflates"] = len(re.findall(r"auto-balloon t=\S+ (?:deflate|cancel_inflate):", text))
            results[vm.name[-1]] = r
    finally:
        for vm in vms:
            vm.stop()
    summary = {
        "mode": mode, "wall_s": time.monotonic() - start,
        "pswpout": vmstat("pswpout") - swap0[1], "pswpin": vmstat("pswpin") - swap0[0],
        "psi_stall_s": (host.psi()[1] - psi0) / 1e6,
        "peak_sum_rss_mib": max(r["rss_a"] + r["rss_b"] for r in samples),
        "mean_sum_rss_mib": sum(r["rss_a"] + r["rss_b"] for r in samples) / len(samples),
        "peak_swap_mib": max(r["swap_a"] + r["swap_b"] for r in samples),
        "min_memavail_mib": min(r["memavail_mib"] for r in samples),
        "guests": results,
    }
    with open(os.path.join(a.out, f"{mode}.csv"), "w") as f:
        keys = list(samples[0].keys())
        f.write("# " + " ".join(keys) + "\n")
        for r in samples:
            f.write(" ".join(f"{r[k]:.2f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + "\n")
    return summary


def table(summaries, a):
    lines = ["| | " + " | ".join(f"auto={s['mode']}" for s in summaries) + " |",
             "| --- | " + " | ".join("---" for _ in summaries) + " |"]

    def row(label, fn):
        lines.append(f"| {label} | " + " | ".join(fn(s) for s in summaries) + " |")

    row("host swap-out (pages of 4 KiB)", lambda s: f"{s['pswpout']:,}")
    row("host swap-in (pages)", lambda s: f"{s['pswpin']:,}")
    row("memory stall time in the VMMs' cgroup (PSI some, s)", lambda s: f"{s['psi_stall_s']:.1f}")
    row("peak / mean sum of VmRSS (MiB)", lambda s: f"{s['peak_sum_rss_mib']:.0f} / {s['mean_sum_rss_mib']:.0f}")
    row("peak swapped-out guest memory, VmSwap (MiB)", lambda s: f"{s['peak_swap_mib']:.0f}")
    row("lowest host MemAvailable (MiB)", lambda s: f"{s['min_memavail_mib']:.0f}")
    for vm in "ab":
        row(f"VM {vm.upper()}: elapsed (s)", lambda s, vm=vm: f"{s['guests'][vm]['elapsed_ms'] / 1000:.1f}")
        row(f"VM {vm.upper()}: work in its {a.hi_mib} MiB phases (s)",
            lambda s, vm=vm: f"{s['guests'][vm]['hi_work_ms'] / 1000:.1f}")
        row(f"VM {vm.upper()}: allocation stalls (count / s)",
            lambda s, vm=vm: f"{s['guests'][vm]['stalls']} / {s['guests'][vm]['stall_ms'] / 1000:.1f}")
        row(f"VM {vm.upper()}: balloon inflates / deflates",
            lambda s, vm=vm: f"{s['guests'][vm]['inflates']} / {s['guests'][vm]['deflates']}")
    return "\n".join(lines) + "\n"


def plot(summaries, a):
    if not shutil.which("gnuplot"):
        print("gnuplot not found (install-deps.sh installs gnuplot-nox): no plot", file=sys.stderr)
        return
    panels = []
    for s in summaries:
        csv = os.path.join(a.out, f"{s['mode']}.csv")
        panels.append(f"""
set title "auto={s['mode']}: swap-out {s['pswpout']:,} pages, PSI stall {s['psi_stall_s']:.1f} s"
plot '{csv}' using 1:($2+$3) with lines lw 2 lc rgb '#000000' title 'VmRSS A+B', \\
     '' using 1:2 with lines lc rgb '#1f77b4' title 'VmRSS A', \\
     '' using 1:3 with lines lc rgb '#ff7f0e' title 'VmRSS B', \\
     '' using 1:($4+$5) with filledcurves y1=0 fs transparent solid 0.3 lc rgb '#d62728' title 'swapped out (VmSwap A+B)', \\
     '' using 1:12 with lines dt 2 lc rgb '#1f77b4' title 'balloon A', \\
     '' using 1:14 with lines dt 2 lc rgb '#ff7f0e' title 'balloon B', \\
     {a.limit_mib} with lines dt 3 lc rgb '#555555' title 'cgroup limit', \\
     '' using 1:10 axes x1y2 with lines lc rgb '#2ca02c' title 'PSI some avg10 (%, right)'
""")
    script = f"""
set terminal pngcairo size 1200,{420 * len(summaries)} font ',10'
set output '{os.path.join(a.out, 'auto-balloon-eval.png')}'
set multiplot layout {len(summaries)},1
set xlabel 'time (s)'
set ylabel 'MiB'
set y2label 'PSI some avg10 (%)'
set y2range [0:100]
set y2tics
set ytics nomirror
set yrange [0:{int(a.limit_mib * 1.6)}]
set xrange [0:{int(max(s['wall_s'] for s in summaries)) + 5}]
set key outside right
set grid
""" + "".join(panels) + "unset multiplot\n"
    subprocess.run(["gnuplot"], input=script.encode(), check=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vmm", required=True)
    p.add_argument("--test-guest", required=True)
    p.add_argument("--out", default="docs/auto-balloon-eval")
    p.add_argument("--modes", default="off,on")
    p.add_argument("--limit-mib", type=int, default=2304)
    p.add_argument("--swap-mib", type=int, default=4096)
    p.add_argument("--ram-mib", type=int, default=1536)
    p.add_argument("--hi-mib", type=int, default=1408)
    p.add_argument("--lo-mib", type=int, default=128)
    p.add_argument("--phase-s", type=int, default=30)
    p.add_argument("--phases", type=int, default=4)
    p.add_argument("--passes", type=int, default=4)
    p.add_argument("--ramp-s", type=int, default=15, help="a growing working set grows over this many seconds")
    p.add_argument("--min-avail-mib", type=int, default=4096)
    p.add_argument("--auto", default="tick=2s,step=256M,hysteresis=20s,stats_max_age=4s,guest_avail_pct=5,"
                                      "guest_avail_min=64M",
                   help="policy keys for auto=on (docs/auto-balloon.md)")
    a = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: it creates cgroups and (without swap) a swap file")
    needed = a.limit_mib + a.min_avail_mib + 1024
    if meminfo_kib("MemAvailable") < needed * 1024:
        raise SystemExit(f"host MemAvailable below {needed} MiB: not safe to run")
    os.makedirs(a.out, exist_ok=True)
    a.sockdir = tempfile.mkdtemp(prefix=f"{NAME}.")
    swap = Swap(a.swap_mib, "/var/tmp")
    summaries = []
    try:
        for mode in a.modes.split(","):
            print(f"auto={mode} ...", flush=True)
            host = SmallHost(a.limit_mib, mode)
            try:
                summaries.append(run_mode(a, mode, host))
            finally:
                host.close()
            print(json.dumps(summaries[-1], indent=1), flush=True)
    finally:
        swap.close()
        shutil.rmtree(a.sockdir, ignore_errors=True)
    text = table(summaries, a)
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write(text)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        args = {k: v for k, v in vars(a).items() if k != "sockdir"}
        json.dump({"args": args, "runs": summaries}, f, indent=1)
    print(text)
    plot(summaries, a)


if __name__ == "__main__":
    main()
