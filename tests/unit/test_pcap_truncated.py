"""Captures cut mid-record (a capture killed by Ctrl-C): every complete record before
the cut is kept and a warning names the file, the byte offset and the records kept;
``strict`` (``egw dataset build --strict``) makes it an error."""
from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest

from classifier.build import build_from_captures
from classifier.dataerrors import DatasetError, PcapError
from classifier.pcapio import read_frames, write_pcap
from classifier.preprocess import Preprocess
from egw_cli.main import main as egw
from tests.unit.pcap_factory import tcp_session, write_capture


def _records(data: bytes, fmt: str) -> list[int]:
    """Byte offset of each packet record (pcap) / block (pcapng) in ``data``."""
    if fmt == "pcap":
        offs, off = [], 24
        while off < len(data):
            offs.append(off)
            off += 16 + struct.unpack_from("<I", data, off + 8)[0]
        return offs
    offs, off = [], 0
    while off < len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        if btype in (2, 3, 6):
            offs.append(off)
        off += blen
    return offs


def _capture(tmp_path: Path, fmt: str) -> Path:
    pkts = tcp_session([(i % 2, bytes([65 + i]) * (30 + i)) for i in range(6)])
    return Path(write_capture(tmp_path / f"whole.{fmt}", pkts, fmt=fmt))


CUTS = {"mid-record": 20, "mid-header": 5}


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("where", sorted(CUTS))
def test_cut_capture_keeps_complete_records_and_warns(tmp_path, fmt, where):
    whole = _capture(tmp_path, fmt)
    data = whole.read_bytes()
    frames = list(read_frames(whole))
    offs = _records(data, fmt)
    assert len(offs) == len(frames) > 5
    k = 5                                         # cut inside the sixth record
    cut_at = offs[k] + CUTS[where]
    p = tmp_path / f"cut.{fmt}"
    p.write_bytes(data[:cut_at])
    warnings: list[str] = []
    got = list(read_frames(p, warnings=warnings))
    assert got == frames[:k]
    assert len(warnings) == 1
    msg = warnings[0]
    assert msg.startswith(f"{p}: truncated at byte {offs[k]} (")
    assert msg.endswith(f"; kept the {k} complete records before it")
    assert "\n" not in msg
    with pytest.raises(PcapError) as ei:
        list(read_frames(p, strict=True))
    assert str(ei.value) == msg


def test_warning_is_logged_without_a_list(tmp_path, caplog):
    p = tmp_path / "cut.pcap"
    write_pcap(p, [(1.0, b"\x45" + bytes(39)), (2.0, b"\x45" + bytes(59))], linktype=101)
    p.write_bytes(p.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING, logger="classifier.pcapio"):
        assert len(list(read_frames(p))) == 1
    assert f"{p}: truncated at byte 80 (packet: record says 60 bytes, 50 left)" in caplog.text
    assert "kept the 1 complete record before it" in caplog.text


def test_cut_in_the_file_header_is_still_an_error(tmp_path):
    whole = _capture(tmp_path, "pcapng")
    p = tmp_path / "cut.pcapng"
    p.write_bytes(whole.read_bytes()[:20])
    with pytest.raises(PcapError, match=r"truncated at byte 0 \(pcapng block"):
        list(read_frames(p))


def _tree(root: Path) -> Path:
    for ci, cls in enumerate(["chat", "web"]):
        (root / cls).mkdir(parents=True)
        for f in range(2):
            pkts = []
            for s in range(4):
                body = bytes([65 + ci]) * (40 + s) + bytes([f, s])
                pkts += tcp_session([(0, body), (1, body * 2)], t0=1000 + f * 100 + s,
                                    sport=30000 + s)
            write_capture(root / cls / f"cap{f}.pcap", pkts)
    data = (root / "web" / "cap1.pcap").read_bytes()
    (root / "web" / "cap1.pcap").write_bytes(data[:-7])
    return root


def test_build_reports_truncated_capture_and_strict_fails(tmp_path, capsys):
    root = _tree(tmp_path / "in")
    cut = root / "web" / "cap1.pcap"
    res = build_from_captures(root, tmp_path / "a.npz", Preprocess(), jobs=1, progress=False)
    assert len(res.warnings) == 1 and str(cut) in res.warnings[0]
    assert res.manifest["warnings"] == res.warnings and not res.skipped
    with pytest.raises(DatasetError, match="truncated"):
        build_from_captures(root, tmp_path / "b.npz", Preprocess(), jobs=1, progress=False,
                            strict=True)
    args = ["dataset", "build", "--input", str(root), "--out", str(tmp_path / "c.npz"),
            "--jobs", "2", "--no-progress"]
    assert egw(args) == 0
    out = capsys.readouterr().out
    assert f"warning: {cut}: truncated at byte" in out and "kept the" in out
    assert egw(args + ["--strict"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{cut}: truncated at byte" in err
