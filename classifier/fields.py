"""Where each header field sits inside a dataset's sample vectors.

A sample holds masked packet bytes (``classifier.masking``) scaled to [0, 1]; this
module reads them back as bytes and names every byte range: IP and transport
header fields, each TCP option's kind/length and value, the UDP pad, payload byte
ranges, and kpackets' length/direction/inter-arrival columns. ``egw dataset audit``
uses it for the shortcut probe (every header byte, options included, payload
blanked) and for per-field permutation importance (which fields a model leans on).

Spans are ``(field, start, end)`` in the flattened sample (end exclusive). The same
field name in several packets of one sample (kpackets, session784) gives several
spans with that name.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from classifier.masking import UDP_PAD, tcp_options
from classifier.packets import PROTO_TCP, PROTO_UDP

TCP_OPTION_NAMES = {2: "mss", 3: "wscale", 4: "sack_permitted", 5: "sack", 8: "timestamp",
                    19: "md5", 29: "ao", 30: "mptcp", 34: "fastopen"}
#: payload byte ranges reported as separate fields
PAYLOAD_RANGES = ((0, 8), (8, 16), (16, 32), (32, 64), (64, 128), (128, 256), (256, 1 << 20))
KPACKETS_COLUMNS = ("pkt.length", "pkt.direction", "pkt.iat")


def to_bytes(x: np.ndarray) -> np.ndarray:
    """Scaled float samples back to uint8 (exact: values are byte / 255)."""
    return np.rint(np.asarray(x, dtype=np.float32) * 255.0).astype(np.uint8)


def packet_fields(b: bytes, base: int, end: int, pad_udp: bool = True
                  ) -> tuple[list[tuple[str, int, int]], int]:
    """Name the byte ranges of one masked packet stored in ``b[base:end]``.

    Returns the spans and the packet's length inside the vector (IP length + UDP pad),
    or ``(spans so far, 0)`` when the bytes are not a packet (zero padding)."""
    n = end - base
    if n < 1 or b[base] == 0:
        return [], 0
    v = b[base] >> 4
    spans: list[tuple[str, int, int]] = []

    def add(name, a, z):
        a, z = base + a, min(base + z, end)
        if a < z:
            spans.append((name, a, z))

    if v == 4:
        ihl = (b[base] & 0x0F) * 4
        if ihl < 20:
            return [], 0
        total = int(b[base + 2]) << 8 | int(b[base + 3]) if n >= 4 else 0
        proto = int(b[base + 9]) if n > 9 else -1
        for name, a, z in (("ip.version_ihl", 0, 1), ("ip.tos", 1, 2), ("ip.length", 2, 4),
                           ("ip.id", 4, 6), ("ip.flags_fragment", 6, 8), ("ip.ttl", 8, 9),
                           ("ip.protocol", 9, 10), ("ip.checksum", 10, 12),
                           ("ip.addresses", 12, 20), ("ip.options", 20, ihl)):
            add(name, a, z)
        t = ihl
    elif v == 6:
        total = 40 + (int(b[base + 4]) << 8 | int(b[base + 5])) if n >= 6 else 0
        proto = int(b[base + 6]) if n > 6 else -1
        for name, a, z in (("ip6.version_class", 0, 2), ("ip6.flow_label", 2, 4),
                           ("ip6.payload_length", 4, 6), ("ip6.next_header", 6, 7),
                           ("ip6.hop_limit", 7, 8), ("ip6.addresses", 8, 40)):
            add(name, a, z)
        t = 40
    else:
        return [], 0
    if proto == PROTO_TCP and t + 13 < n:
        thl = (b[base + t + 12] >> 4) * 4
        for name, a, z in (("tcp.ports", 0, 4), ("tcp.seq_ack", 4, 12), ("tcp.offset_flags", 12, 14),
                           ("tcp.window", 14, 16), ("tcp.checksum", 16, 18), ("tcp.urgent", 18, 20)):
            add(name, t + a, t + z)
        hdr = t + max(20, thl)
        for kind, off, ln in tcp_options(b, base + t + 20, min(base + hdr, end)):
            opt = TCP_OPTION_NAMES.get(kind, "other")
            if kind == 1:
                spans.append(("tcp.opt.nop", off, off + 1))
                continue
            spans.append((f"tcp.opt.{opt}.kind_length", off, off + 2))
            if ln > 2:
                spans.append((f"tcp.opt.{opt}.value", off + 2, off + ln))
    elif proto == PROTO_UDP and t + 8 <= n:
        for name, a, z in (("udp.ports", 0, 4), ("udp.length", 4, 6), ("udp.checksum", 6, 8)):
            add(name, t + a, t + z)
        hdr = t + 8
        if pad_udp:
            add("udp.pad", hdr, hdr + UDP_PAD)
            hdr += UDP_PAD
            total += UDP_PAD
    else:
        hdr = t
    for a, z in PAYLOAD_RANGES:
        name = f"payload[{a}:{z}]" if z < (1 << 20) else f"payload[{a}:]"
        lo, hi = hdr + a, min(hdr + z, total if total else n)
        if lo < hi:
            add(name, lo, hi)
    return spans, max(total, hdr)


def sample_fields(b: np.ndarray, pre) -> list[tuple[str, int, int]]:
    """Spans of one flattened sample ``b`` (uint8) made by ``Preprocess`` ``pre``."""
    b = bytes(np.asarray(b, dtype=np.uint8))   # plain ints from here on (no uint8 overflow)
    if pre.layers != "all":
        return [(f"payload[{a}:{z}]" if z < (1 << 20) else f"payload[{a}:]", a, min(z, len(b)))
                for a, z in PAYLOAD_RANGES if a < len(b)]
    pad = pre.mask.pad_udp
    if pre.repr == "kpackets":
        row = pre.n_bytes + 3
        spans = []
        for i in range(pre.k):
            base = i * row
            if not any(b[base:base + pre.n_bytes]):
                continue
            spans += packet_fields(b, base, base + pre.n_bytes, pad)[0]
            spans += [(c, base + pre.n_bytes + j, base + pre.n_bytes + j + 1)
                      for j, c in enumerate(KPACKETS_COLUMNS)]
        return spans
    if pre.per_packet:
        return packet_fields(b, 0, len(b), pad)[0]
    return list(_walk_session(b, pad))   # session784, session images: packets concatenated


def _walk_session(b: np.ndarray, pad_udp: bool) -> Iterator[tuple[str, int, int]]:
    """Packets concatenated (session784, session images): walk them by their IP length."""
    off = 0
    while off < len(b):
        spans, ln = packet_fields(b, off, len(b), pad_udp)
        if not ln:
            return
        yield from spans
        off += ln


def dataset_fields(X: np.ndarray, pre) -> list[list[tuple[str, int, int]]]:
    """Spans of every sample of a dataset ``X`` built with ``Preprocess`` ``pre``."""
    raw = to_bytes(X.reshape(len(X), -1))   # kpackets' last 3 columns are not bytes: unused
    return [sample_fields(raw[i], pre) for i in range(len(raw))]


def header_mask(fields: list[list[tuple[str, int, int]]], width: int) -> np.ndarray:
    """(n, width) bool: True where a sample's byte is part of an IP or transport header."""
    m = np.zeros((len(fields), width), dtype=bool)
    for i, spans in enumerate(fields):
        for name, a, z in spans:
            if not name.startswith(("payload", "pkt.")):
                m[i, a:z] = True
    return m


def permute_field(flat: np.ndarray, fields: list[list[tuple[str, int, int]]], name: str,
                  rng: np.random.Generator) -> np.ndarray | None:
    """A copy of ``flat`` (n, width) with field ``name``'s bytes shuffled across samples
    (among spans of equal length, so options of other sizes stay aligned). None when no
    sample has the field."""
    by_len: dict[int, list[tuple[int, int]]] = {}
    for i, spans in enumerate(fields):
        for nm, a, z in spans:
            if nm == name:
                by_len.setdefault(z - a, []).append((i, a))
    if not by_len:
        return None
    out = flat.copy()
    for ln, where in by_len.items():
        rows = np.array([i for i, _ in where])
        cols = np.array([a for _, a in where])[:, None] + np.arange(ln)[None]
        vals = flat[rows[:, None], cols]
        out[rows[:, None], cols] = vals[rng.permutation(len(where))]
    return out


def field_names(fields: list[list[tuple[str, int, int]]]) -> list[str]:
    """Field names in first-seen order."""
    seen: dict[str, None] = {}
    for spans in fields:
        for nm, _a, _z in spans:
            seen.setdefault(nm, None)
    return list(seen)
