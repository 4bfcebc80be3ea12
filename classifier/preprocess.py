"""``Preprocess``: the exact filtering, masking and representation of a model.

One object, saved as ``preprocess.json`` in a dataset and a model bundle, turns
one session's packets into the model input, identically offline
(``egw dataset build``) and live (the gateway). See docs/data.md.

Representations (``repr``):

==============  ======================================================  ==============
name            sample                                                  sample shape
==============  ======================================================  ==============
``packet1480``  ByteSGAN PBV of one usable packet (one row per packet)  (n_bytes,)
``session784``  first n_bytes of the session (tiny-CNN / Wang 2017)     (n_bytes,)
``image900``    DeepNFV image of one packet (or of the session)         (side, side)
``kpackets``    first k packets: bytes + length, direction, IAT          (k, n_bytes+3)
==============  ======================================================  ==============

``vectorize(packets)`` always returns a batch ``(rows, *sample_shape)``:
session representations give one row (zero rows when the session has no usable
packet); per-packet representations give one row per usable packet, in arrival
order. **The gateway classifies per-packet models on the first row** (the first
usable packet), which is why ``mirror_budget()`` is ``(1, n_bytes)`` for them.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable, Sequence

import numpy as np

from classifier.dataerrors import PreprocessError
from classifier.filtering import FilterOptions, SessionFilter, packet_accepts
from classifier.masking import MaskOptions, mask_packet
from classifier.packets import PacketView, parse
from classifier.representations import (deepnfv_image, first_k_packets,
                                        packet_byte_vector, session_vector)

REPRS = ("packet1480", "session784", "image900", "kpackets")
DEFAULT_BYTES = {"packet1480": 1480, "session784": 784, "image900": 900, "kpackets": 100}
FORMAT_VERSION = 2
#: format 1 (before TCP option counters were masked) is read as it was made: no option masking
READABLE_VERSIONS = (1, 2)

Packet = tuple[float, bytes, int]


@dataclass
class Preprocess:
    """Filtering, masking and representation options (defaults follow the papers).

    - ``repr``: one of ``REPRS``.
    - ``layers``: ``"all"`` (masked IP + transport headers + payload) or ``"l7"``
      (payload only).
    - ``n_bytes``: bytes per sample (packet1480/session784/image900) or per packet
      row (kpackets); None = the representation's default (1480/784/900/100).
      image900 needs a square number.
    - ``k``: packets (rows) of ``kpackets``.
    - ``max_packets``: only the first ``max_packets`` usable packets of a session
      are used (None = all); bounds what the gateway must mirror.
    - ``image_unit``: ``"packet"`` (DeepNFV: one image per packet) or ``"session"``
      (first bytes of the session as one image).
    - ``idle_timeout`` / ``bidirectional``: session splitting (seconds; 5-tuple
      sessions or unidirectional flows).
    - ``mask`` / ``filter``: :class:`MaskOptions` / :class:`FilterOptions`.
    """

    repr: str = "session784"
    layers: str = "all"
    n_bytes: int | None = None
    k: int = 8
    max_packets: int | None = 10
    image_unit: str = "packet"
    idle_timeout: float = 60.0
    bidirectional: bool = True
    mask: MaskOptions = field(default_factory=MaskOptions)
    filter: FilterOptions = field(default_factory=FilterOptions)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if isinstance(self.mask, dict):
            self.mask = _sub(MaskOptions, self.mask, "mask")
        if isinstance(self.filter, dict):
            self.filter = _sub(FilterOptions, self.filter, "filter")
        if self.repr not in REPRS:
            raise PreprocessError(f"unknown representation {self.repr!r} (one of {', '.join(REPRS)})")
        if self.layers not in ("all", "l7"):
            raise PreprocessError(f"layers must be 'all' or 'l7', not {self.layers!r}")
        if self.image_unit not in ("packet", "session"):
            raise PreprocessError(f"image_unit must be 'packet' or 'session', not {self.image_unit!r}")
        if self.n_bytes is None:
            self.n_bytes = DEFAULT_BYTES[self.repr]
        for name in ("n_bytes", "k"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise PreprocessError(f"{name} must be a positive integer, not {v!r}")
        if self.max_packets is not None and (not isinstance(self.max_packets, int) or self.max_packets < 1):
            raise PreprocessError(f"max_packets must be a positive integer or null, not {self.max_packets!r}")
        if self.repr == "image900" and math.isqrt(self.n_bytes) ** 2 != self.n_bytes:
            raise PreprocessError(f"image900 needs a square n_bytes (e.g. 900), not {self.n_bytes}")
        if not isinstance(self.idle_timeout, (int, float)) or self.idle_timeout <= 0:
            raise PreprocessError(f"idle_timeout must be a positive number, not {self.idle_timeout!r}")
        if self.format_version not in READABLE_VERSIONS:
            raise PreprocessError(f"format_version {self.format_version!r} is not supported "
                                  f"(this code reads {', '.join(map(str, READABLE_VERSIONS))})")

    # ---- (de)serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocess":
        if isinstance(d, dict) and d.get("format_version", 1) == 1:
            # a bundle or dataset made before TCP option counters were masked: keep its vectors
            mask = d.get("mask", {})
            if isinstance(mask, dict) and "zero_tcp_option_counters" not in mask:
                d = {**d, "mask": {**mask, "zero_tcp_option_counters": False}}
        return _sub(cls, d)

    def to_json(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=2, sort_keys=True)
            fh.write("\n")

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "Preprocess":
        try:
            with open(path, encoding="utf-8") as fh:
                d = json.load(fh)
        except OSError as exc:
            raise PreprocessError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PreprocessError(f"{path}: not valid JSON: {exc}") from None
        try:
            return cls.from_dict(d)
        except PreprocessError as exc:
            raise PreprocessError(f"{path}: {exc}") from None

    # ---- shape -------------------------------------------------------------
    @property
    def per_packet(self) -> bool:
        """True when each usable packet is a sample (packet1480, image900 per packet)."""
        return self.repr == "packet1480" or (self.repr == "image900" and self.image_unit == "packet")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        if self.repr == "image900":
            s = math.isqrt(self.n_bytes)
            return (s, s)
        if self.repr == "kpackets":
            return (self.k, self.n_bytes + 3)
        return (self.n_bytes,)

    # ---- gateway helpers ---------------------------------------------------
    def accepts(self, ip: bytes) -> bool:
        """Does this packet count (TCP/UDP, not chatter, has payload)? Stateless filter."""
        return packet_accepts(parse(ip), self.filter)

    def mirror_budget(self) -> tuple[int, int]:
        """(max_payload_packets, max_bytes): the gateway can classify once it has seen
        that many usable packets, or once the usable packets' contribution to the
        vector reaches max_bytes, whichever comes first (see ``session_ready``)."""
        if self.per_packet:
            return 1, self.n_bytes
        if self.repr == "kpackets":
            k = self.k if self.max_packets is None else min(self.k, self.max_packets)
            return k, k * self.n_bytes
        mp = self.max_packets if self.max_packets is not None else self.n_bytes
        return mp, self.n_bytes

    def session_ready(self, packets: Sequence[Packet]) -> bool:
        """True once ``packets`` (one session, arrival order) fill the mirror budget.
        (Parses every packet: the gateway keeps a :meth:`readiness` per session instead.)"""
        r = self.readiness()
        return any(r.add(ts, pv, d) for ts, pv, d in self._views(packets))

    def readiness(self) -> "Readiness":
        """An incremental :meth:`session_ready` for one session: feed it each parsed
        packet once, in arrival order (O(1) per packet)."""
        return Readiness(self)

    # ---- vectors -----------------------------------------------------------
    def chunk(self, pv: PacketView) -> bytes:
        """A usable packet's masked bytes as they enter the representation."""
        if self.layers == "l7":
            return pv.payload
        return mask_packet(pv, self.mask)

    def _contribution(self, pv: PacketView) -> int:
        if self.layers == "l7":
            n = pv.payload_len
        else:
            n = pv.length + (12 if pv.proto == 17 and self.mask.pad_udp else 0)
        return min(n, self.n_bytes)

    @staticmethod
    def _views(packets: Iterable[Packet]) -> list[tuple[float, PacketView | None, int]]:
        return [(ts, parse(ip), d) for ts, ip, d in packets]

    def _usable(self, views: Iterable[tuple[float, PacketView | None, int]]):
        """The session's usable packets (filtering), first ``max_packets`` of them."""
        f = SessionFilter(self.filter)
        out = []
        limit = self.max_packets
        if self.repr == "kpackets":
            limit = self.k if limit is None else min(limit, self.k)
        # session vectors: later packets cannot change the first n_bytes, stop there
        byte_budget = self.n_bytes if (not self.per_packet and self.repr != "kpackets") else None
        got = 0
        for ts, pv, d in views:
            if f.usable(pv, d):
                out.append((ts, pv, d))
                if limit is not None and len(out) >= limit:
                    break
                if byte_budget is not None:
                    got += self._contribution(pv)
                    if got >= byte_budget:
                        break
        return out

    def vectorize_views(self, views: Iterable[tuple[float, PacketView | None, int]]) -> np.ndarray:
        """``vectorize`` on already parsed packets ``[(ts, PacketView, direction)]``: the
        offline build and the gateway (which keeps each packet-in's view) both call it."""
        usable = self._usable(views)
        shape = self.sample_shape
        if not usable:
            return np.zeros((0, *shape), dtype=np.float32)
        if self.per_packet:
            # one uint8 matrix, scaled once: same values as packet_byte_vector/deepnfv_image per row
            n = self.n_bytes
            buf = np.zeros((len(usable), n), dtype=np.uint8)
            for i, (_ts, pv, _d) in enumerate(usable):
                c = self.chunk(pv)
                m = min(n, len(c))
                buf[i, :m] = np.frombuffer(c, dtype=np.uint8, count=m)
            return (buf.astype(np.float32) / np.float32(255.0)).reshape(len(usable), *shape)
        chunks = [self.chunk(pv) for _ts, pv, _d in usable]
        if self.repr == "session784":
            return session_vector(chunks, self.n_bytes)[None]
        if self.repr == "image900":
            return session_vector(chunks, self.n_bytes).reshape(1, *shape)
        return first_k_packets(chunks, [pv.length for _t, pv, _d in usable],
                               [d for _t, _pv, d in usable], [t for t, _pv, _d in usable],
                               self.k, self.n_bytes)[None]

    def vectorize(self, packets: Sequence[Packet]) -> np.ndarray:
        """Model input for ONE session: ``packets`` = ``[(timestamp, ip_bytes, direction)]``
        in arrival order (direction 0 = client→server). Returns ``(rows, *sample_shape)``
        float32 (see module doc); filtering (chatter, payload, duplicates,
        retransmissions) happens here, so pass every packet of the session."""
        return self.vectorize_views(self._views(packets))

    def _packet_sample(self, pv: PacketView) -> np.ndarray:
        c = self.chunk(pv)
        if self.repr == "packet1480":
            return packet_byte_vector(c, self.n_bytes)
        return deepnfv_image(c, math.isqrt(self.n_bytes))

    def vectorize_packet(self, ts: float, ip: bytes, direction: int = 0) -> np.ndarray | None:
        """One packet's sample (per-packet representations; a session representation
        gets the vector of a one-packet session). None when the packet does not count
        (stateless filter only: duplicates/retransmissions need the session)."""
        pv = parse(ip)
        if not packet_accepts(pv, self.filter):
            return None
        if self.per_packet:
            return self._packet_sample(pv)
        return self.vectorize_views([(ts, pv, direction)])[0]


class Readiness:
    """``Preprocess.session_ready`` one packet at a time: ``add(ts, pv, direction)``
    returns what ``session_ready`` returns on the packets added so far. It runs the
    same :class:`SessionFilter` (duplicates, retransmissions) and counts usable packets
    and their bytes against ``mirror_budget()``; once true it stays true."""

    __slots__ = ("_filter", "_contribution", "_max_packets", "_max_bytes", "n", "nbytes", "ready")

    def __init__(self, pre: Preprocess) -> None:
        self._filter = SessionFilter(pre.filter)
        self._contribution = pre._contribution
        self._max_packets, self._max_bytes = pre.mirror_budget()
        self.n = self.nbytes = 0
        self.ready = False

    def add(self, ts: float, pv: PacketView | None, direction: int) -> bool:
        if not self.ready and self._filter.usable(pv, direction):
            self.n += 1
            self.nbytes += self._contribution(pv)
            self.ready = self.n >= self._max_packets or self.nbytes >= self._max_bytes
        return self.ready


def _sub(cls, d: dict, name: str | None = None):
    """The dataclass ``cls`` from the JSON object ``d`` (the whole file, or its ``name`` part),
    with an error for anything else or for unknown keys."""
    if not isinstance(d, dict):
        raise PreprocessError(f"{name} must be an object" if name else
                              f"expected a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise PreprocessError(f"unknown key(s) {'in ' + name + ': ' if name else ''}"
                              f"{', '.join(unknown)}")
    try:
        return cls(**d)
    except TypeError as exc:
        raise PreprocessError(f"{name}: {exc}" if name else str(exc)) from None
