"""Host-side probes of a running VMM, shared by tests/soak/soak.py and
tests/integration/virtio_hostile.py (python3, stdlib only).

* fd_count(pid): entries of /proc/PID/fd.
* rss_kib(pid, ram_bytes): the VMM's own resident memory, guest RAM excluded. Guest RAM
  is what the guest and the balloon move up and down; the VMM's own memory (heap,
  stacks, code) must stay flat. Guest RAM is found in /proc/PID/smaps as the anonymous
  mappings (no path) whose size equals a guest RAM region: the VMM maps each region of
  the x86_64 layout (memory/src/x86_64_layout.cpp: [0, min(RAM, 3 GiB)) and, above
  3 GiB of RAM, the rest at 4 GiB) with one mmap of exactly that size.
* Api: GET/PUT on the REST API's Unix socket (docs/api.md), one connection per request.
"""
import http.client
import json
import os
import re
import socket

MMIO_HOLE_START = 3 << 30

_MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def guest_ram_region_sizes(ram_bytes):
    low = min(ram_bytes, MMIO_HOLE_START)
    return [low] + ([ram_bytes - MMIO_HOLE_START] if ram_bytes > MMIO_HOLE_START else [])


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid, ram_bytes):
    """(own_kib, guest_kib): Rss of every mapping except guest RAM, and of guest RAM.
    Raises RuntimeError when a guest RAM mapping cannot be identified (a split or
    merged mapping would otherwise be counted as the VMM's own memory)."""
    wanted = [s // 1024 for s in guest_ram_region_sizes(ram_bytes)]
    own = guest = 0
    anonymous = False
    size = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if _MAPPING.match(line):
                anonymous = len(line.split()) < 6  # no path: not a file, [heap] or [stack]
                size = None
            elif line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
                if anonymous and size in wanted:
                    wanted.remove(size)
                    guest += rss
                else:
                    own += rss
    if wanted:
        raise RuntimeError(f"no anonymous mapping of {wanted} KiB (guest RAM) in /proc/{pid}/smaps")
    return own, guest


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class Api:
    def __init__(self, socket_path, timeout=10):
        self.path = socket_path
        self.timeout = timeout

    def request(self, method, endpoint, body=None):
        """(status, parsed JSON or text or None)."""
        conn = _UnixConnection(self.path, self.timeout)
        try:
            data = json.dumps(body) if body is not None else None
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, f"/api/v1/{endpoint}", body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read().decode(errors="replace")
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw

    def get(self, endpoint):
        return self.request("GET", endpoint)

    def put(self, endpoint, body=None):
        return self.request("PUT", endpoint, body)

    def answers(self):
        try:
            return self.get("vmm.ping")[0] == 200
        except OSError:
            return False


def kvm_usable(device="/dev/kvm"):
    """The tests' skip rule: /dev/kvm must open read-write."""
    try:
        os.close(os.open(device, os.O_RDWR))
        return True
    except OSError:
        return False
