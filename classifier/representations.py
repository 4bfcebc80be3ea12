"""The model inputs, each a named function over masked bytes (see docs/data.md).

All byte values are scaled to [0, 1] as ``byte / 255`` in float32.

- :func:`packet_byte_vector` - ByteSGAN Packet Byte Vector: one packet, 1480
  bytes, truncated or zero-padded.
- :func:`session_vector` - tiny-CNN / Wang et al. session vector: the first 784
  bytes of the session (its usable packets' bytes concatenated in arrival order,
  layer-7 payload only or all layers), trimmed or 0x00-padded.
- :func:`deepnfv_image` - DeepNFV image: 900 bytes as a 30x30 grey image.
- :func:`first_k_packets` - a (k, n_bytes + 3) matrix: per packet its first
  n_bytes masked bytes, then length, direction and inter-arrival time.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

#: Scale for kpackets' length column (IP packet length / MAX_LEN, clipped to 1).
MAX_LEN = 1500.0
#: kpackets' inter-arrival column: log1p(ms) / log1p(IAT_CAP_MS), clipped to 1.
IAT_CAP_MS = 60_000.0


def _scaled(data: bytes, n: int) -> np.ndarray:
    buf = np.zeros(n, dtype=np.uint8)
    m = min(n, len(data))
    if m:
        buf[:m] = np.frombuffer(data, dtype=np.uint8, count=m)
    return buf.astype(np.float32) / np.float32(255.0)


def packet_byte_vector(data: bytes, n_bytes: int = 1480) -> np.ndarray:
    """ByteSGAN PBV: ``data`` (one masked packet) cut/zero-padded to n_bytes, in [0,1]."""
    return _scaled(data, n_bytes)


def session_vector(chunks: Sequence[bytes], n_bytes: int = 784) -> np.ndarray:
    """Tiny-CNN session vector: first n_bytes of the concatenated chunks, 0x00-padded."""
    out = bytearray()
    for c in chunks:
        out += c
        if len(out) >= n_bytes:
            break
    return _scaled(bytes(out), n_bytes)


def deepnfv_image(data: bytes, side: int = 30) -> np.ndarray:
    """DeepNFV image: first side*side bytes (zero-padded) as a (side, side) array in [0,1]."""
    return _scaled(data, side * side).reshape(side, side)


def first_k_packets(chunks: Sequence[bytes], lengths: Sequence[int], directions: Sequence[int],
                    timestamps: Sequence[float], k: int = 8, n_bytes: int = 100) -> np.ndarray:
    """(k, n_bytes + 3) float32: each row = first n_bytes of a packet's masked bytes
    (zero-padded, /255), then ``min(length, 1500) / 1500``, direction (0 client→server,
    1 server→client), and ``log1p(iat_ms) / log1p(60000)`` clipped to 1 (0 for the first
    packet). Rows past the session's last packet are all zero."""
    out = np.zeros((k, n_bytes + 3), dtype=np.float32)
    prev = None
    for i, (c, ln, d, ts) in enumerate(zip(chunks, lengths, directions, timestamps)):
        if i >= k:
            break
        out[i, :n_bytes] = _scaled(c, n_bytes)
        out[i, n_bytes] = min(float(ln), MAX_LEN) / MAX_LEN
        out[i, n_bytes + 1] = float(d)
        iat_ms = 0.0 if prev is None else max(0.0, (ts - prev) * 1000.0)
        out[i, n_bytes + 2] = min(1.0, math.log1p(iat_ms) / math.log1p(IAT_CAP_MS))
        prev = ts
    return out
