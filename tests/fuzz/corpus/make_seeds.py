#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

Each seed is a small, well-formed input in the format the target's header comment
describes (support/fuzz_input.h reads little-endian integers front to back), so
that fuzzing starts from real requests: descriptor chains the Linux drivers build,
HTTP requests from docs/api.md, command lines from README.md, a minimal vmlinux
and bzImage. Run it after changing an input format; the output is committed.
Files it does not write (regression inputs, kept fuzzing finds) are left alone.
    tests/fuzz/corpus/make_seeds.py [--bzimage PATH]   (PATH: a real bzImage whose
                                                        first 4 KiB become a seed)
"""
import argparse
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def u8(v): return struct.pack("<B", v & 0xff)
def u16(v): return struct.pack("<H", v & 0xffff)
def u32(v): return struct.pack("<I", v & 0xffffffff)
def u64(v): return struct.pack("<Q", v & 0xffffffffffffffff)


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- virtqueue
def desc(addr, length, flags=0, nxt=0):
    return u64(addr) + u32(length) + u16(flags) + u16(nxt)


NEXT, WRITE, INDIRECT = 1, 2, 4


def virtqueue_seed(size, flags, descs, heads, ops, extra=b"", indirect_table=b""):
    """Rings in region 0: desc at 0, avail at 0x800, used at 0xc00; an indirect
    table at 0x1000; buffers from 0x2000 (one spans into region 1 at 0x10000)."""
    img = bytearray(0x1100)
    for i, d in enumerate(descs):
        img[16 * i:16 * i + 16] = d
    avail = u16(0) + u16(len(heads)) + b"".join(u16(h) for h in heads)
    img[0x800:0x800 + len(avail)] = avail
    img[0x1000:0x1000 + len(indirect_table)] = indirect_table
    head = u16(size) + u16(size) + u64(0) + u64(0x800) + u64(0xc00) + u8(flags)
    images = u16(len(img)) + bytes(img) + u16(len(extra)) + extra + u16(0)
    return head + images + ops


def pop(length=0): return u8(0) + u32(length)


def make_virtqueue():
    t = "fuzz_virtqueue"
    write(t, "simple-chain", virtqueue_seed(
        8, 0, [desc(0x2000, 16, NEXT, 1), desc(0x3000, 512, NEXT | WRITE, 2), desc(0x4000, 1, WRITE)],
        [0], pop(513) + u8(3)))
    write(t, "two-chains-event-idx", virtqueue_seed(
        8, 1, [desc(0x2000, 64), desc(0x2100, 64, WRITE)], [0, 1], pop(0) + pop(64) + u8(3) + pop()))
    write(t, "cross-region-buffer", virtqueue_seed(
        4, 0, [desc(0xfff0, 0x20, NEXT, 1), desc(0x40000, 0x100, WRITE)], [0], pop(0x100)))
    table = desc(0x2000, 16, NEXT, 1) + desc(0x3000, 4096, NEXT | WRITE, 2) + desc(0x4000, 1, WRITE)
    write(t, "indirect", virtqueue_seed(
        16, 2 | 1, [desc(0x1000, len(table), INDIRECT)], [0], pop(4097) + u8(3), indirect_table=table))
    write(t, "loop", virtqueue_seed(8, 0, [desc(0x2000, 8, NEXT, 1), desc(0x2000, 8, NEXT, 0)], [0], pop()))
    write(t, "out-of-ram", virtqueue_seed(8, 0, [desc(0x30000, 8)], [0], pop()))
    write(t, "bad-head", virtqueue_seed(8, 0, [desc(0x2000, 8)], [9], pop()))
    write(t, "completion", virtqueue_seed(8, 0, [desc(0x2000, 8)], [0],
                                          pop(8) + u8(2) + u16(7) + u32(0) + u8(1) + u64(0x802) + u16(5) + pop()))


# ---------------------------------------------------------------- virtio devices
def driver_header(flags=0b111, features=0, size_log2=4):
    return u8(flags) + u32(features) + u8(size_log2)


def op_mem(addr, data): return u8(0) + u32(addr) + u8(len(data)) + data
def op_kick(q): return u8(3) + u8(q)
def op_mmio_read(off, size_sel=2): return u8(5) + u16(off) + u8(size_sel)
def op_mmio_write(off, value, size_sel=2): return u8(4) + u16(off) + u8(size_sel) + u64(value)
def op_reset(): return u8(9)
def op_irq_ack(): return u8(11)
def op_device(sub, operands=b""): return u8(8) + u8(sub) + operands


def op_chain(q, bufs, indirect=False):
    out = u8(7 if indirect else 6) + u8(q) + u8(len(bufs) - 1)
    for addr, length, writable in bufs:
        out += u32(addr) + u32(length) + u8(1 if writable else 0)
    return out


DATA = 0x80000


def blk_header(kind, sector=0): return u32(kind) + u32(0) + u64(sector)


def make_blk():
    t = "fuzz_virtio_blk"
    hdr, data, status = DATA, DATA + 0x1000, DATA + 0x3000
    read = op_mem(hdr, blk_header(0, 1)) + op_chain(0, [(hdr, 16, 0), (data, 1024, 1), (status, 1, 1)])
    write_ = (op_mem(data, bytes(range(200))) + op_mem(hdr, blk_header(1, 2)) +
              op_chain(0, [(hdr, 16, 0), (data, 512, 0), (status, 1, 1)]))
    flush = op_mem(hdr, blk_header(4)) + op_chain(0, [(hdr, 16, 0), (status, 1, 1)])
    get_id = op_mem(hdr, blk_header(8)) + op_chain(0, [(hdr, 16, 0), (data, 20, 1), (status, 1, 1)])
    cfg = op_mmio_read(0x100, 3) + op_mmio_read(0x10c) + op_mmio_read(0x114)
    write(t, "read", u8(0) + driver_header() + read + op_irq_ack())
    write(t, "write-read-flush", u8(0) + driver_header() + write_ + read + flush + get_id + cfg)
    write(t, "readonly-write", u8(1) + driver_header() + write_)
    write(t, "direct-io", u8(2) + driver_header() + write_ + read)
    write(t, "indirect-read", u8(0) + driver_header() + op_mem(hdr, blk_header(0)) +
          op_chain(0, [(hdr, 16, 0), (data, 512, 1), (data + 512, 512, 1), (status, 1, 1)], True))
    # A data buffer across the two adjacent RAM regions (0x100000).
    write(t, "cross-region", u8(0) + driver_header() + op_mem(hdr, blk_header(0)) +
          op_chain(0, [(hdr, 16, 0), (0xfff00, 0x200, 1), (status, 1, 1)]))
    write(t, "bad-requests", u8(0) + driver_header() + op_mem(hdr, blk_header(0x99)) +
          op_chain(0, [(hdr, 16, 0), (status, 1, 1)]) + op_chain(0, [(hdr, 8, 0)]) +
          op_mem(hdr, blk_header(0, 0xffffffffffffffff)) + op_chain(0, [(hdr, 16, 0), (data, 512, 1), (status, 1, 1)]))
    write(t, "reset-and-again", u8(0) + driver_header(flags=0b001) + read + op_reset() + read)


def make_net():
    t = "fuzz_virtio_net"
    frame = bytes(12) + bytes.fromhex("ffffffffffff5254001234560806") + bytes(28)
    rx = op_chain(0, [(DATA, 2048, 1)]) + op_chain(0, [(DATA + 0x1000, 10, 1), (DATA + 0x2000, 1514, 1)])
    inject = op_device(0, u16(len(frame)) + frame)
    tx = op_mem(0x90000, frame) + op_chain(1, [(0x90000, len(frame), 0)])
    features = (1 << 5) | (1 << 16)
    write(t, "rx", driver_header(features=features) + rx + inject + inject + op_device(3))
    write(t, "tx", driver_header(features=features) + tx + op_chain(1, [(0x90000, 12, 0), (0x90010, 40, 0)], True))
    write(t, "rx-before-buffers", driver_header(features=features) + inject + rx + op_kick(0) + op_device(1, u32(1)))
    write(t, "tx-error", driver_header() + op_device(2) + tx + op_mmio_read(0x100, 3) + op_mmio_read(0x106, 1))
    write(t, "rx-too-short", driver_header() + op_chain(0, [(DATA, 8, 1)]) + inject)


def make_rng():
    t = "fuzz_virtio_rng"
    write(t, "fill", u8(0) + driver_header() + op_chain(0, [(DATA, 64, 1)]) + op_device(0))
    write(t, "fill-indirect", u8(0) + driver_header() + op_chain(0, [(DATA, 16, 1), (0xffff0, 0x40, 1)], True))
    write(t, "source-empty", u8(1) + driver_header() + op_chain(0, [(DATA, 4096, 1)]) + op_device(0))
    write(t, "readable-only", u8(0) + driver_header() + op_chain(0, [(DATA, 64, 0)]))


def make_console():
    t = "fuzz_virtio_console"
    text = b"hello from the guest\n"
    tx = op_mem(DATA, text) + op_chain(1, [(DATA, len(text), 0)])
    rx = op_chain(0, [(DATA + 0x1000, 16, 1)])
    inp = op_device(0, u16(5) + b"abcde")
    write(t, "tx", driver_header() + tx + op_device(1))
    write(t, "rx", driver_header() + rx + inp + inp + rx + op_kick(0))
    write(t, "input-before-driver", driver_header(flags=0) + inp + op_reset())
    write(t, "config", driver_header() + op_mmio_read(0x100, 3) + op_mmio_write(0x104, 1))


def make_balloon():
    t = "fuzz_virtio_balloon"
    pfns = b"".join(u32(p) for p in (0x100, 0x101, 0x102, 0x200, 0xfffff))
    inflate = op_mem(0x90000, pfns) + op_chain(0, [(0x90000, len(pfns), 0)])
    deflate = op_chain(1, [(0x90000, 8, 0)])
    stats = b"".join(u16(tag) + u64(val) for tag, val in ((4, 1 << 20), (5, 8 << 20), (7, 1 << 30)))
    stats_q = op_mem(0x91000, stats) + op_chain(2, [(0x91000, len(stats), 0)])
    report = op_chain(3, [(0x100000, 0x2000, 1), (0x300000, 0x1000, 1)])
    report_only = op_chain(2, [(0x100000, 0x2000, 1), (0x300000, 0x1000, 1)])  # no stats queue
    features = (1 << 1) | (1 << 2) | (1 << 5)
    target = op_device(0, u64(64 << 1))  # 64 pages (even values count pages)
    write(t, "inflate-deflate", u8(0) + driver_header(features=features) + target + inflate + deflate
          + op_mmio_read(0x100) + op_mmio_write(0x104, 5) + op_device(2))
    write(t, "stats", u8(4) + driver_header(features=features) + stats_q + op_device(1) + stats_q + op_device(2))
    write(t, "reporting", u8(2) + driver_header(features=features) + report_only + op_device(2))
    write(t, "everything", u8(7) + driver_header(features=features) + target + inflate + stats_q + report
          + deflate + op_device(1) + op_device(3, u32(2)) + op_reset() + inflate)


def zone_record(zone_type, start_pfn, pages, trees, lower, free, file=0, local=0):
    return (u64(local) + u64(trees) + u64(lower) + u32(start_pfn) + u32(pages) + u32(zone_type) +
            u32(0) + u64(free) + u64(file))


def make_hyperalloc_device():
    t = "fuzz_hyperalloc_device"
    features = (1 << 1) | (1 << 4)
    zone = op_device(0, u8(1) + u16(1024) + u16(3072) + u8(0) + u8(5))      # NORMAL, [4 MiB, 16 MiB)
    zone_dma = op_device(0, u8(0) + u16(512) + u16(512) + u8(0) + u8(1))    # DMA32 [2 MiB, 4 MiB)
    target = op_device(2, u64(2 * 2))                                       # 2 frames of 2 MiB
    # Install queues have one slot: the driver sends request + status indirect (shape 1).
    install = op_device(4, u8(0) + u32(0) + u32(1) + u64(512 * 4) + u8(1))
    install_ind = op_device(4, u8(0) + u32(0) + u32(1) + u64(512 * 5) + u8(1))
    bad = zone_record(5, 0, 10, 0x100001, 0x200000, 0x300000)
    write(t, "zone-target-install", u8(0) + driver_header(features=features) + zone + target + install
          + op_device(6) + op_device(2, u64(0)) + op_device(6))
    write(t, "auto-mode", u8(1 | 8) + driver_header(features=features) + zone + op_device(3) + install_ind
          + op_device(8) + op_device(7, u64(1) + u8(0)) + op_device(3) + op_device(6))
    write(t, "two-zones-notify", u8(4 | 8) + driver_header(features=features) + zone_dma + zone + target
          + op_device(5, u32(0)) + op_device(6))
    write(t, "bad-records", u8(2) + driver_header(features=features) + op_device(1, u8(1) + bad)
          + op_device(4, u8(1) + u32(0) + u32(1) + u64(0) + u8(3)) + op_device(6))
    write(t, "corrupted-children", u8(1 | 8) + driver_header(features=features) + zone
          + op_mem(0x101000, b"\xff" * 32) + op_device(3) + target + op_device(6))


def make_hyperalloc_records():
    t = "fuzz_hyperalloc_records"
    normal = zone_record(1, 1024, 15360, 0x300000, 0x301000, 0x310000, 0x310008, 0x311000)
    dma = zone_record(0, 16, 1000, 0x320000, 0x321000, 0x330000, 0, 0x331000)
    write(t, "one-zone", u8(0) + normal)
    write(t, "two-zones", u8(0) + dma + normal)
    write(t, "duplicate-and-overlap", u8(0) + normal + normal +
          zone_record(2, 2048, 10, 0x340000, 0x341000, 0x350000))
    write(t, "misaligned", u8(0) + zone_record(1, 1024, 100, 0x300008, 0x301000, 0x310004))
    write(t, "pci-hole", u8(1) + zone_record(1, 0x100000, 0x40000, 0x1000000, 0x1001000, 0x1010000))
    write(t, "array-across-regions", u8(2) + zone_record(1, 1024, 1024, 0x1fffc0, 0x200000, 0x300000))
    write(t, "counter-in-array", u8(0) + zone_record(1, 1024, 100, 0x300000, 0x301000, 0x300000))


# ---------------------------------------------------------------- port I/O and PCI
def make_legacy():
    t = "fuzz_legacy_devices"

    def outp(port, value, size_sel=0): return u8(0) + u16(port) + u8(size_sel) + u32(value)
    def inp(port, size_sel=0): return u8(1) + u16(port) + u8(size_sel)
    def ecam_w(off, value, size_sel=2): return u8(2) + u32(off) + u8(size_sel) + u32(value)
    def ecam_r(off, size_sel=2): return u8(3) + u32(off) + u8(size_sel)
    def cf8(slot, off): return outp(0xcf8, 0x80000000 | (slot << 11) | off, 2)

    serial = (outp(0x3f9, 0x0f) + outp(0x3fb, 0x80) + outp(0x3f8, 0x01) + outp(0x3fb, 0x03) +
              b"".join(outp(0x3f8, c) for c in b"hi\n") + inp(0x3fd) + inp(0x3fa) +
              u8(4) + u8(3) + b"ls\n" + inp(0x3f8) + inp(0x3f8) + outp(0x3fc, 0x10) + outp(0x3f8, 0x41) + inp(0x3f8))
    i8042 = (outp(0x64, 0x20) + inp(0x60) + outp(0x64, 0x60) + outp(0x60, 0x47) + outp(0x64, 0xaa) +
             inp(0x60) + outp(0x60, 0xf4) + inp(0x64) + u8(5) + inp(0x60) + inp(0x60) + outp(0x64, 0xfe))
    bar_sizing = (cf8(1, 0x00) + inp(0xcfc, 2) + cf8(1, 0x10) + outp(0xcfc, 0xffffffff, 2) + inp(0xcfc, 2) +
                  outp(0xcfc, 0xfebf0000, 2) + cf8(1, 0x14) + outp(0xcfc, 0xffffffff, 2) + inp(0xcfc, 2) +
                  cf8(1, 0x18) + outp(0xcfc, 0xffffffff, 2) + cf8(1, 0x20) + outp(0xcfc, 0xffffffff, 2) +
                  inp(0xcfc, 2) + cf8(1, 0x04) + outp(0xcfc, 0x7, 1) + cf8(1, 0x34) + inp(0xcfc, 0))
    ecam = (ecam_r(0x00000) + ecam_r(0x08000) + ecam_r(0x08034, 0) + ecam_r(0x08040) + ecam_w(0x08042, 0x81, 1) +
            ecam_w(0x08010, 0xffffffff) + ecam_r(0x08010) + ecam_r(0x08100) + ecam_r(0x10000))
    write(t, "serial", serial)
    write(t, "i8042", i8042)
    write(t, "pci-bar-sizing", bar_sizing)
    write(t, "pci-ecam", ecam)
    write(t, "debug-port", outp(0x80, 0x10) + outp(0x80, 0x11) + inp(0x80) + outp(0x80, 0x1234, 1))


# ---------------------------------------------------------------- REST API
def http_seed(requests, reply_kind=0, text=b"fuzz", split=7, tiny=False):
    return u8(1 if tiny else 0) + u8(reply_kind) + u16(len(text)) + text + u16(split) + requests


def req(method, path, body=b"", headers=()):
    out = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n".encode()
    for h in headers:
        out += h.encode() + b"\r\n"
    if body or method == "PUT":
        out += f"Content-Length: {len(body)}\r\n".encode()
    if body:
        out += b"Content-Type: application/json\r\n"
    return out + b"\r\n" + body


def make_http_request():
    t = "fuzz_http_request"
    gets = ["vmm.ping", "vm.info", "vm.counters", "vm.balloon-statistics"]
    puts = ["vm.pause", "vm.resume", "vm.shutdown", "vm.reboot", "vm.power-button", "vmm.shutdown"]
    for i, ep in enumerate(gets):
        write(t, f"get-{ep}", http_seed(req("GET", f"/api/v1/{ep}"), reply_kind=i + 1))
    for i, ep in enumerate(puts):
        write(t, f"put-{ep}", http_seed(req("PUT", f"/api/v1/{ep}"), reply_kind=8 * i))
    write(t, "resize-balloon-bytes", http_seed(req("PUT", "/api/v1/vm.resize-balloon", b'{"size": 67108864}')))
    write(t, "resize-balloon-size", http_seed(req("PUT", "/api/v1/vm.resize-balloon", b'{"size": "512M"}'), 7))
    write(t, "resize", http_seed(req("PUT", "/api/v1/vm.resize", b'{"desired_balloon": 1073741824}')))
    write(t, "add-device", http_seed(req("PUT", "/api/v1/vm.add-device",
                                         b'{"path": "/sys/bus/pci/devices/0000:02:00.0/"}'), 6))
    write(t, "remove-device", http_seed(req("PUT", "/api/v1/vm.remove-device", b'{"id": "vfio1"}')))
    write(t, "pipelined", http_seed(req("GET", "/api/v1/vmm.ping") + req("GET", "/api/v1/vm.info?x=1") +
                                    req("PUT", "/api/v1/vm.pause", headers=("Connection: close",)), 2, split=30))
    write(t, "curl-expect", http_seed(req("PUT", "/api/v1/vm.resize-balloon", b'{"size": "2G"}',
                                          headers=("User-Agent: curl/7.88.1", "Accept: */*", "Expect: 100-continue"))))
    write(t, "http10", http_seed(b"GET /api/v1/vmm.ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
    write(t, "errors", http_seed(b"\r\nGET /api/v1/nope HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"))
    write(t, "wrong-method", http_seed(req("POST", "/api/v1/vm.info")))
    write(t, "tiny-limits", http_seed(req("PUT", "/api/v1/vm.resize-balloon", b'{"size": 4096}',
                                          headers=("X-A: 1", "X-B: 2", "X-C: 3", "X-D: 4")), tiny=True))
    write(t, "bad-json", http_seed(req("PUT", "/api/v1/vm.resize-balloon", b'{"size": [1, {"a": null}]')))


def make_http_response():
    t = "fuzz_http_response"

    def seed(response, flags=1, target=b"vm.info", body=b"", max_bytes=4096):
        return u8(flags) + u16(max_bytes) + u8(len(target)) + target + u16(len(body)) + body + response

    write(t, "ok-json", seed(b"HTTP/1.1 200 OK\r\nServer: vmm\r\nContent-Length: 13\r\n"
                             b"Content-Type: application/json\r\n\r\n{\"state\": 1}\n"))
    write(t, "no-content", seed(b"HTTP/1.1 204 No Content\r\nServer: vmm\r\n\r\n", flags=3,
                                target=b"vm.pause"))
    write(t, "error", seed(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 19\r\n\r\n{\"error\": \"nope\"}\r\n",
                           flags=2, target=b"vm.resize-balloon", body=b'{"size": 4096}'))
    write(t, "until-eof", seed(b"HTTP/1.0 200 OK\r\n\r\nbody until eof"))
    write(t, "truncated", seed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", flags=0))


# ---------------------------------------------------------------- CLI
def make_cli():
    t = "fuzz_cli"

    def seed(args, mode=1, ram_pages=(1 << 30) >> 12):
        return u8(mode) + u32(ram_pages) + b"\0".join(a.encode() for a in args)

    write(t, "readme-boot", seed(["--kernel", "vmlinux", "--cmdline", "console=ttyS0 reboot=k panic=1",
                                  "--cpus", "boot=2", "--memory", "size=1G", "--initramfs", "initramfs.cpio.gz"]))
    write(t, "readme-devices", seed(["--kernel", "vmlinux", "--memory", "size=1G", "--disk",
                                     "path=rootfs.img,readonly=on", "--rng", "--net",
                                     "tap=tap0,ip=192.168.249.1,mask=255.255.255.0", "--balloon",
                                     "model=virtio,size=256M", "--cmdline", "console=ttyS0 reboot=k root=/dev/vda ro",
                                     "--api-socket", "path=/tmp/vmm.sock"]))
    write(t, "hyperalloc-auto", seed(["--kernel", "K", "--memory", "size=4G", "--balloon", "size=1G,auto=on",
                                      "--api-socket", "path=/tmp/vmm.sock"]))
    write(t, "virtio-auto", seed(["--kernel", "k", "--memory", "size=4G", "--balloon",
                                  "model=virtio,size=0,auto=on,psi=cgroup,tick=2s,step=128M,hysteresis=30s"]))
    write(t, "hyperalloc-options", seed(["--kernel=k", "--balloon",
                                         "model=hyperalloc,auto=on,period=1s,auto_limit=64M,install=worker,shrink_pagecache=off"]))
    write(t, "vfio", seed(["--kernel", "vmlinux", "--memory", "size=4G", "--device",
                           "path=/sys/bus/pci/devices/0000:01:00.0/", "path=0000:02:00.0,id=nic"]))
    write(t, "consoles", seed(["--kernel", "k", "--serial", "tty", "--console", "file=/tmp/out", "-vv",
                               "--log-file", "/tmp/log", "--net", "tap=t,mac=52:54:00:12:34:56,id=n0"]))
    write(t, "help", seed(["-hV"], mode=7))
    write(t, "bad", seed(["--kernel", "k", "--memory", "size=1Q", "--cpus", "boot=0", "--disk", "path=[a,b"]))


# ---------------------------------------------------------------- loaders
def boot_seed(image, cmdline=b"console=ttyS0 reboot=k panic=1", initramfs=b"", detect=0):
    return u8(detect) + u16(len(cmdline)) + cmdline + u16(len(initramfs)) + initramfs + image


def elf_image(segments, entry):
    """ELF64 x86_64 ET_EXEC; segments: (type, paddr, data, memsz)."""
    ehsize, phsize = 64, 56
    phoff = ehsize
    data_off = phoff + phsize * len(segments)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    eh = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, entry, phoff, 0, 0, ehsize, phsize,
                             len(segments), 64, 0, 0)
    phs, blobs, off = b"", b"", data_off
    for ptype, paddr, data, memsz in segments:
        phs += struct.pack("<IIQQQQQQ", ptype, 7, off, paddr, paddr, len(data), memsz, 0x1000)
        blobs += data
        off += len(data)
    return eh + phs + blobs


def make_elf():
    t = "fuzz_elf_loader"
    code = bytes([0xf4] * 64)  # hlt
    write(t, "one-segment", boot_seed(elf_image([(1, 0x100000, code, 0x2000)], 0x100000)))
    write(t, "two-segments-initramfs", boot_seed(
        elf_image([(1, 0x100000, code, len(code)), (4, 0, b"note", 4), (1, 0x200000, b"data" * 8, 0x1000)], 0x100010),
        initramfs=b"070701" + bytes(200)))
    write(t, "second-region", boot_seed(elf_image([(1, 0x400000, code, 0x1000)], 0x400000), detect=1))
    # Segments in both RAM regions, the hole between them: the kernel spans regions.
    write(t, "across-the-hole", boot_seed(
        elf_image([(1, 0x100000, code, 0x1000), (1, 0x400000, code, 0x1000)], 0x100000),
        initramfs=b"070701" + bytes(100)))
    write(t, "below-1m", boot_seed(elf_image([(1, 0x1000, code, 0x100)], 0x1000)))
    write(t, "entry-outside", boot_seed(elf_image([(1, 0x100000, code, 0x100)], 0x300000)))


def bzimage(setup_sects=1, version=0x020f, xloadflags=1, kernel_alignment=0x100000, relocatable=1,
            cmdline_size=2047, initrd_addr_max=0x7fffffff, pref_address=0x100000, init_size=0x80000,
            payload=bytes(range(256)) * 4):
    # setup_sects 0 means 4 to the loader: the image then needs 5 sectors of setup.
    setup = bytearray(512 * ((setup_sects or 4) + 1))
    def put(off, fmt, v): struct.pack_into(fmt, setup, off, v)
    put(0x1f1, "<B", setup_sects)
    put(0x1fe, "<H", 0xaa55)
    put(0x200, "<B", 0xeb)
    put(0x201, "<B", 0x6a)              # header ends at 0x26c (protocol 2.15)
    put(0x202, "<I", 0x53726448)        # "HdrS"
    put(0x206, "<H", version)
    put(0x211, "<B", 0x01)              # LOADED_HIGH
    put(0x22c, "<I", initrd_addr_max)
    put(0x230, "<I", kernel_alignment)
    put(0x234, "<B", relocatable)
    put(0x236, "<H", xloadflags)
    put(0x238, "<I", cmdline_size)
    put(0x258, "<Q", pref_address)
    put(0x260, "<I", init_size)
    return bytes(setup) + payload


def make_bzimage(real):
    t = "fuzz_bzimage_loader"
    write(t, "minimal", boot_seed(bzimage()))
    write(t, "initramfs", boot_seed(bzimage(initrd_addr_max=0x1fffff), initramfs=b"070701" + bytes(300)))
    write(t, "short-cmdline", boot_seed(bzimage(cmdline_size=8), cmdline=b"console=ttyS0"))
    write(t, "not-relocatable", boot_seed(bzimage(relocatable=0, pref_address=0x200000), detect=1))
    write(t, "setup-sects-zero", boot_seed(bzimage(setup_sects=0)))
    write(t, "old-protocol", boot_seed(bzimage(version=0x0206)))
    write(t, "no-64bit-entry", boot_seed(bzimage(xloadflags=0)))
    write(t, "too-big", boot_seed(bzimage(init_size=0x4000000)))
    if real:
        with open(real, "rb") as f:
            write(t, "real-head", boot_seed(f.read(4096)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bzimage", help="a real bzImage; its first 4 KiB become a seed")
    args = p.parse_args()
    # Seeds are (over)written by name; other files in the corpus directories (inputs
    # kept from fuzzing runs, regression inputs of fixed bugs) stay.
    make_virtqueue()
    make_blk()
    make_net()
    make_rng()
    make_console()
    make_balloon()
    make_legacy()
    make_hyperalloc_device()
    make_hyperalloc_records()
    make_http_request()
    make_http_response()
    make_cli()
    make_elf()
    make_bzimage(args.bzimage)


if __name__ == "__main__":
    main()
