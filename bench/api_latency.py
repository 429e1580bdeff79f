#!/usr/bin/env python3
"""API latency under concurrent clients (docs/benchmarks.md, "REST API").

N client processes (default 8) each send R requests (default 500) of GET vm.info,
then of PUT vm.resize-balloon (cycling 16M/24M/32M targets, so the guest keeps
inflating and deflating), all at once; every request's latency is measured from
connect to the last byte of the reply. Prints p50/p99/max and throughput per
endpoint. Any non-2xx reply is counted and makes the exit status 1.

Against a running VMM:   api_latency.py --socket /run/vmm.sock
Booting its own VM:      api_latency.py --vmm build/vmm --kernel build/tests/guest/test_guest.elf
(the test guest in balloon-follow mode, 512 MiB, balloon 16 MiB; needs /dev/kvm).
By default each request opens a new connection (as curl and `vmm remote` do);
--keep-alive reuses one connection per client.
"""
import argparse
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20


def request_bytes(method, path, body, keep_alive):
    head = f"{method} /api/v1/{path} HTTP/1.1\r\nHost: localhost\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if not keep_alive:
        head += "Connection: close\r\n"
    return (head + "\r\n" + body).encode()


def read_reply(sock):
    """Reads one reply (Content-Length framed); returns its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the reply headers")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed inside the reply body")
        rest += chunk
    return status


def client(args):
    sock_path, endpoint, count, keep_alive, index, barrier = args
    latencies, failures = [], 0
    conn = None
    barrier.wait()
    for i in range(count):
        if endpoint == "vm.info":
            raw = request_bytes("GET", "vm.info", "", keep_alive)
        else:
            size = (16 + 8 * ((i + index) % 3)) * MIB
            raw = request_bytes("PUT", "vm.resize-balloon", '{"size": %d}' % size, keep_alive)
        start = time.perf_counter_ns()
        try:
            if conn is None:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.connect(sock_path)
            conn.sendall(raw)
            status = read_reply(conn)
        except OSError:
            status = 0
        latencies.append(time.perf_counter_ns() - start)
        if not 200 <= status < 300:
            failures += 1
        if not keep_alive or status == 0:
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return latencies, failures


def percentile(sorted_values, p):
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def run_endpoint(sock_path, endpoint, clients, count, keep_alive):
    with mp.Manager() as manager:
        barrier = manager.Barrier(clients)
        with mp.Pool(clients) as pool:
            start = time.perf_counter()
            results = pool.map(client, [(sock_path, endpoint, count, keep_alive, i, barrier)
                                        for i in range(clients)])
            wall = time.perf_counter() - start
    latencies = sorted(l for r in results for l in r[0])
    failures = sum(r[1] for r in results)
    ms = lambda ns: ns / 1e6
    print(f"{endpoint:18s} {len(latencies):6d} req  p50 {ms(percentile(latencies, 50)):7.3f} ms  "
          f"p99 {ms(percentile(latencies, 99)):7.3f} ms  max {ms(latencies[-1]):7.3f} ms  "
          f"{len(latencies) / wall:8.0f} req/s  non-2xx {failures}")
    return failures


def start_vmm(vmm, kernel, sock_path, log):
    proc = subprocess.Popen([vmm, "--kernel", kernel, "--cmdline",
                             "testguest.mode=balloon-follow testguest.follow_s=3600", "--cpus", "boot=1",
                             "--memory", "size=512M", "--balloon", "model=virtio,size=16M",
                             "--api-socket", f"path={sock_path}"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"api_latency: the VMM exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(sock_path)
                s.sendall(request_bytes("GET", "vmm.ping", "", False))
                if read_reply(s) == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.05)
    proc.kill()
    sys.exit("api_latency: the API did not answer within 30 s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", help="API socket of a running VMM")
    parser.add_argument("--vmm", help="vmm binary to start (with --kernel)")
    parser.add_argument("--kernel", help="test_guest.elf")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=500, help="per client and endpoint")
    parser.add_argument("--keep-alive", action="store_true", help="one connection per client")
    args = parser.parse_args()
    if bool(args.socket) == bool(args.vmm and args.kernel):
        parser.error("give either --socket, or --vmm and --kernel")

    proc = None
    with tempfile.TemporaryDirectory(prefix="api_latency.") as work:
        sock_path = args.socket
        log = None
        if not sock_path:
            sock_path = os.path.join(work, "api.sock")
            log = open(os.path.join(work, "vmm.log"), "w")
            proc = start_vmm(args.vmm, args.kernel, sock_path, log)
        try:
            print(f"{args.clients} clients x {args.requests} requests each, "
                  f"{'keep-alive' if args.keep_alive else 'one connection per request'}")
            failures = 0
            for endpoint in ("vm.info", "vm.resize-balloon"):
                failures += run_endpoint(sock_path, endpoint, args.clients, args.requests, args.keep_alive)
        finally:
            if proc is not None:
                with socket.socket(socket.AF_UNIX) as s:
                    try:
                        s.connect(sock_path)
                        s.sendall(request_bytes("PUT", "vmm.shutdown", "", False))
                        read_reply(s)
                    except OSError:
                        pass
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                log.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
