"""Plain, struct-based pcap / pcapng reader (no scapy dissection).

``read_frames(path)`` yields ``(timestamp, linktype, frame_bytes)`` for every
packet record; ``read_ip_packets(path)`` strips the link layer with
:func:`classifier.packets.ip_from_frame` and yields ``(timestamp, ip_bytes)``
(frames that are not IPv4/IPv6, e.g. ARP, are skipped).

Supported: classic pcap (both byte orders, micro- and nanosecond magic) and
pcapng (SHB of either byte order, IDB with ``if_tsresol``, EPB, SPB and the
obsolete PB; other blocks are skipped). Any link type that
:func:`ip_from_frame` understands (Ethernet, raw IP, Linux cooked v1/v2,
null/loopback).

Bad files raise :class:`PcapError` (``user_facing``) with a one-line message
naming the file: empty, too short, unknown magic (not a capture), truncated file
header.  A capture cut mid-record (or mid-record-header), as a capture killed by
Ctrl-C leaves it, keeps every complete record before the cut and warns naming the
file, the byte offset and the number of records kept, like tcpdump and Wireshark;
``strict=True`` makes it a :class:`PcapError`.
"""
from __future__ import annotations

import logging
import os
import struct
from typing import Iterator

from classifier.dataerrors import PcapError
from classifier.packets import ip_from_frame

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
BYTE_ORDER_MAGIC = 0x1A2B3C4D

log = logging.getLogger(__name__)


def _read_all(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise PcapError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_frames(path: str | os.PathLike, strict: bool = False,
                warnings: list[str] | None = None) -> Iterator[tuple[float, int, bytes]]:
    """Yield ``(timestamp_s, linktype, frame)`` for each packet of a pcap/pcapng file.

    A file cut mid-record ends the iteration after the last complete record with a
    warning (appended to ``warnings`` when given, else logged); ``strict`` raises
    :class:`PcapError` instead."""
    data = _read_all(path)
    if not data:
        raise PcapError(f"{path}: empty file (0 bytes), not a pcap/pcapng capture")
    if len(data) < 4:
        raise PcapError(f"{path}: too short ({len(data)} bytes) to be a pcap/pcapng capture")
    magic = data[:4]
    cut = _Truncation(path, strict, warnings)
    if magic in PCAP_MAGICS:
        return _iter_pcap(path, data, cut)
    if magic == PCAPNG_SHB:
        return _iter_pcapng(path, data, cut)
    raise PcapError(f"{path}: not a pcap/pcapng capture (magic bytes {magic.hex()})")


class _Truncation:
    """What to do when the data ends inside a record: warn or (``strict``) raise."""

    def __init__(self, path, strict: bool, warnings: list[str] | None):
        self.path, self.strict, self.warnings = path, strict, warnings
        self.kept = 0

    def __call__(self, offset: int, what: str) -> None:
        msg = (f"{self.path}: truncated at byte {offset} ({what}); kept the {self.kept} "
               f"complete record{'' if self.kept == 1 else 's'} before it")
        if self.strict:
            raise PcapError(msg)
        if self.warnings is not None:
            self.warnings.append(msg)
        else:
            log.warning("%s", msg)


def _iter_pcap(path, data: bytes, cut: _Truncation) -> Iterator[tuple[float, int, bytes]]:
    endian, res = PCAP_MAGICS[data[:4]]
    if len(data) < 24:
        raise PcapError(f"{path}: truncated pcap file header ({len(data)} of 24 bytes)")
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    rec = struct.Struct(endian + "IIII")
    unpack = rec.unpack_from
    off, n = 24, len(data)
    while off < n:
        if off + 16 > n:
            cut(off, f"packet record header, {n - off} of 16 bytes")
            return
        sec, frac, incl, _orig = unpack(data, off)
        off += 16
        end = off + incl
        if end > n:
            cut(off - 16, f"packet: record says {incl} bytes, {n - off} left")
            return
        cut.kept += 1
        yield sec + frac * res, linktype, data[off:end]
        off = end


def _iter_pcapng(path, data: bytes, cut: _Truncation) -> Iterator[tuple[float, int, bytes]]:
    n = len(data)
    off = 0
    endian = "<"
    ifaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
    while off < n:
        if off + 12 > n:
            if off == 0:
                raise PcapError(f"{path}: truncated pcapng block header at byte {off}")
            cut(off, f"pcapng block header, {n - off} of 12 bytes")
            return
        if data[off:off + 4] == PCAPNG_SHB:
            bom = data[off + 8:off + 12]
            if bom == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                raise PcapError(f"{path}: bad pcapng byte-order magic at byte {off + 8}")
            ifaces = []
        btype, blen = struct.unpack_from(endian + "II", data, off)
        if blen < 12 or blen % 4:
            raise PcapError(f"{path}: corrupt pcapng block length {blen} at byte {off}")
        if off + blen > n:
            what = f"pcapng block: block says {blen} bytes, {n - off} left"
            if off == 0:
                raise PcapError(f"{path}: truncated at byte {off} ({what})")
            cut(off, what)
            return
        body = off + 8
        if btype == 0x00000001:  # Interface Description Block
            linktype = struct.unpack_from(endian + "H", data, body)[0]
            ifaces.append((linktype, _tsresol(data, body + 8, off + blen - 4, endian)))
        elif btype == 0x00000006 or btype == 0x00000002:  # EPB / obsolete PB
            if btype == 6:
                iface, ts_hi, ts_lo, cap = struct.unpack_from(endian + "IIII", data, body)
            else:
                iface, _drops, ts_hi, ts_lo, cap = struct.unpack_from(endian + "HHIII", data, body)
            start = body + 20
            if start + cap > off + blen - 4:
                raise PcapError(f"{path}: corrupt pcapng packet block at byte {off}")
            if iface >= len(ifaces):
                raise PcapError(f"{path}: packet block at byte {off} names unknown interface {iface}")
            lt, tick = ifaces[iface]
            cut.kept += 1
            yield ((ts_hi << 32) | ts_lo) * tick, lt, data[start:start + cap]
        elif btype == 0x00000003:  # Simple Packet Block: no timestamp
            if not ifaces:
                raise PcapError(f"{path}: simple packet block at byte {off} before any interface")
            orig = struct.unpack_from(endian + "I", data, body)[0]
            cap = min(orig, blen - 16)
            lt, _tick = ifaces[0]
            cut.kept += 1
            yield 0.0, lt, data[body + 4:body + 4 + cap]
        off += blen


def _tsresol(data: bytes, opt: int, end: int, endian: str) -> float:
    """Seconds per timestamp tick from an IDB's options (default microseconds)."""
    while opt + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", data, opt)
        if code == 0:
            break
        if code == 9 and length >= 1:
            v = data[opt + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        opt += 4 + ((length + 3) & ~3)
    return 1e-6


def read_ip_packets(path: str | os.PathLike, strict: bool = False,
                    warnings: list[str] | None = None) -> Iterator[tuple[float, bytes]]:
    """Yield ``(timestamp_s, ip_bytes)`` for each IPv4/IPv6 packet of a capture
    (``strict``, ``warnings``: as :func:`read_frames`)."""
    for ts, lt, frame in read_frames(path, strict, warnings):
        ip = ip_from_frame(frame, lt)
        if ip is not None:
            yield ts, ip


def write_pcap(path: str | os.PathLike, packets, linktype: int = 101) -> None:
    """Write ``(timestamp, frame_bytes)`` records as a little-endian microsecond pcap."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for ts, frame in packets:
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        out.append(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
        out.append(bytes(frame))
    with open(path, "wb") as fh:
        fh.write(b"".join(out))
