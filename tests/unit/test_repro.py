"""The paper reproductions (benchmarks/repro_*.py) run end to end on tiny synthetic data:
a few pcaps per class made with the shared factory, a tiny idx folder and a taxonomy, so the
scripts cannot rot. Sizes are overridden to a step or two; the numbers mean nothing."""
from __future__ import annotations

import gzip
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

from tests.unit.pcap_factory import tcp_session, udp_session, write_capture  # noqa: E402

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

CLASSES = {"alpha": b"\x16\x03\x01ALPHA", "beta": b"\x17\x03\x03BETA", "vpn_beta": b"\x45VPNBETA"}


def _write_idx(path: Path, arr: np.ndarray) -> None:
    code = 0x08
    head = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(head + arr.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repro-data")
    rng = np.random.default_rng(0)
    for ci, (name, tag) in enumerate(CLASSES.items()):
        d = root / "iscx-apps" / name
        d.mkdir(parents=True)
        pkts = []
        for s in range(8):
            pay = [(k % 2, tag + rng.integers(0, 256, 60 + 10 * k, dtype=np.uint8).tobytes()) for k in range(3)]
            t0 = 1000.0 + 100 * s
            if name == "beta" and s % 2:
                pkts += udp_session(pay, t0=t0, sport=41000 + s)
            else:
                pkts += tcp_session(pay, t0=t0, sport=40000 + s, dport=443 + ci)
        write_capture(d / f"{name}.pcap", pkts)
    (root / "taxonomy-iscx-traffic-types.yaml").write_text("chat: [alpha]\nvoip: [beta, vpn_beta]\n")
    idx = root / "iscx-session784" / "12class" / "SessionL7"
    idx.mkdir(parents=True)
    for part, n in (("train", 36), ("t10k", 12)):
        y = np.arange(n) % 3
        X = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        X[:, 0, :4] = (y[:, None] * 60).astype(np.uint8)
        _write_idx(idx / f"{part}-images-idx3-ubyte.gz", X)
        _write_idx(idx / f"{part}-labels-idx1-ubyte.gz", y)
    return root


def _check(out: Path, res: dict, name: str) -> dict:
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["experiment"] == name and on_disk["size"] == "quick"
    assert on_disk["wall_seconds"] > 0 and on_disk["hardware"]["cores_visible"]
    for p in on_disk["plots"]:
        assert (out / p).stat().st_size > 1000
    assert res["experiment"] == name
    return on_disk


def test_bytesgan_quick(data, tmp_path):
    import repro_bytesgan
    res = repro_bytesgan.main(["--quick", "--data", str(data), "--out", str(tmp_path), "--epochs", "1",
                               "--labels", "2", "--unlabelled", "0,all", "--table4-labelled", "2",
                               "--min-sessions", "2", "--batch", "16", "--steps", "1"])
    r = _check(tmp_path, res, "bytesgan")
    for prot in ("paper", "honest"):
        assert [row["labelled_per_class"] for row in r["table5"][prot]] == [2]
        row = r["table5"][prot][0]
        assert 0 <= row["bytesgan"]["per_row"]["accuracy"] <= 1 and row["cnn"]["per_row"]["n"] > 0
        assert [row["unlabelled_per_class"] for row in r["table4"][prot]] == [0, "all"]
        assert r["table4"][prot][0]["unlabelled_rows"] == 0 < r["table4"][prot][1]["unlabelled_rows"]
        assert "duplicates_across_splits" in r["data"][prot]["audit"]
    assert r["data"]["honest"]["audit"]["sessions_in_several_splits"] == 0
    assert set(r["losses"]["honest_L2"]) >= {"d_adv_loss", "g_adv_loss"}
    assert "bytesgan_fig7_losses.png" in r["plots"]
    import repro_report
    md = repro_report.bytesgan(r)
    assert "#### Table V" in md and "#### Table IV" in md and "92.15" in md
    assert "ByteSGAN V" in repro_report.summary({"bytesgan": r})
    assert "Table IV, honest protocol" in repro_report.bytesgan_findings(r)


def test_tinycnn_quick(data, tmp_path):
    import repro_tinycnn
    res = repro_tinycnn.main(["--quick", "--data", str(data), "--out", str(tmp_path), "--epochs", "1",
                              "--generations", "1", "--population", "1"])
    r = _check(tmp_path, res, "tinycnn")
    assert r["runs"]["honest"]["classes"] == ["chat", "voip", "vpn_voip"]
    for prot in ("paper", "honest"):
        run = r["runs"][prot]
        assert len(run["candidates"]) == 2
        hw = run["hardware"]
        assert hw["params"] > 0 and hw["flash_bytes_tflite_int8"] > 0
        assert hw["flash_bytes_paper_convention"] == 4 * hw["params"]
        assert {"accuracy", "macro_precision", "macro_recall", "macro_f1"} <= set(run["test"])
    import repro_report
    assert "ours: HW-NAS best child" in repro_report.tinycnn(r)
    assert "honest search, holdout macro-F1" in repro_report.tinycnn_findings(r)


def test_deepnfv_quick(data, tmp_path):
    import repro_deepnfv
    res = repro_deepnfv.main(["--quick", "--data", str(data), "--out", str(tmp_path), "--epochs", "1",
                              "--min-sessions", "2"])
    r = _check(tmp_path, res, "deepnfv")
    for prot in ("paper", "honest"):
        run = r["runs"][prot]
        assert run["classes"] == sorted(CLASSES)
        for model in ("deepnfv", "cart"):
            pc = run[model]["per_row"]["per_class"]
            assert set(pc) == set(CLASSES) and all(0 <= v["precision"] <= 1 for v in pc.values())
    assert r["paper"]["table1"]["Average"]["cnn_precision"] == 0.95
    import repro_report
    md = repro_report.deepnfv(r)
    assert "**Average** (macro)" in md and "Samba (not in our data)" in md
    assert "honest protocol:" in repro_report.deepnfv_findings(r)
