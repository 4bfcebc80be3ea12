"""egw dataset build / audit, splits, load_dataset, idx input, bad files."""
from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from classifier.audit import audit_dataset, format_audit
from classifier.dataerrors import DatasetError
from classifier.dataset import load_dataset, save_dataset
from classifier.preprocess import Preprocess
from classifier.splits import assign_splits
from egw_cli.main import main as egw
from tests.unit.pcap_factory import tcp_session, udp_session, write_capture

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def _make_tree(root: Path, n_files: int = 2, sessions: int = 6) -> Path:
    """Three classes; each file holds ``sessions`` sessions with class-specific payloads,
    plus DNS chatter and a bare-handshake session (both filtered)."""
    for ci, (cls, link) in enumerate([("web", "ether"), ("voice", "raw"), ("chat", "sll")]):
        d = root / cls
        d.mkdir(parents=True)
        for f in range(n_files):
            pk = []
            for s in range(sessions):
                t0 = 1000 + f * 100 + s
                body = bytes([65 + ci]) * (40 + s) + bytes([f, s])
                if cls == "voice":
                    pk += udp_session([(0, body), (1, body[::-1])], t0=t0, sport=20000 + s)
                else:
                    pk += tcp_session([(0, body), (1, body * 2)], t0=t0, sport=30000 + s)
            pk += udp_session([(0, b"dnsq"), (1, b"dnsa")], t0=1090 + f * 100, dport=53)
            pk += tcp_session([], t0=1095 + f * 100, sport=45000)
            write_capture(d / f"cap{f}.{'pcapng' if f % 2 else 'pcap'}", pk, link=link,
                          fmt="pcapng" if f % 2 else "pcap")
    return root


def test_build_and_load_session784(tmp_path, capsys):
    root = _make_tree(tmp_path / "in")
    out = tmp_path / "ds.npz"
    rc = egw(["dataset", "build", "--input", str(root), "--repr", "session784", "--out", str(out),
              "--jobs", "2", "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "web" in text and "total" in text
    ds = load_dataset(out)
    assert ds.labels == ["chat", "voice", "web"]
    assert ds.X.dtype == np.float32 and ds.X.shape == (36, 784)
    assert ds.y.dtype == np.int64 and ds.session.dtype == np.int64 and ds.split.dtype == np.int8
    assert np.bincount(ds.y).tolist() == [12, 12, 12]  # chatter and empty handshakes dropped
    assert ds.preprocess == Preprocess(repr="session784")
    m = ds.manifest
    assert len(m["files"]) == 6 and m["version"] and m["options"]["seed"] == 0
    assert all(len(f["sha256"]) == 64 for f in m["files"])
    X, y = ds.train()
    assert len(X) + len(ds.val()[0]) + len(ds.test()[0]) == 36
    # the same vector as vectorizing a session directly
    pk = tcp_session([(0, bytes([65]) * 40 + b"\0\0"), (1, (bytes([65]) * 40 + b"\0\0") * 2)],
                     sport=30000)
    from scapy.all import IP
    v = Preprocess().vectorize([(t, bytes(p), 0 if p[IP].src == "10.0.0.2" else 1) for t, p in pk])
    assert any(np.array_equal(v[0], x) for x in ds.X)


@pytest.mark.parametrize("repr_,shape", [("packet1480", (1480,)), ("image900", (30, 30)),
                                         ("kpackets", (8, 103))])
def test_build_other_reprs_sessions_stay_together(tmp_path, repr_, shape):
    root = _make_tree(tmp_path / "in", n_files=1, sessions=8)
    out = tmp_path / "ds.npz"
    assert egw(["dataset", "build", "--input", str(root), "--repr", repr_, "--out", str(out),
                "--jobs", "1", "--no-progress"]) == 0
    ds = load_dataset(out)
    assert ds.X.shape[1:] == shape
    for s in np.unique(ds.session):
        assert len(np.unique(ds.split[ds.session == s])) == 1
    if repr_ == "packet1480":
        assert len(ds.X) == 2 * len(np.unique(ds.session))


def test_taxonomy_and_max_per_class(tmp_path, capsys):
    root = _make_tree(tmp_path / "in", n_files=1)
    tax = tmp_path / "tax.yaml"
    tax.write_text("realtime:\n  - voice\n  - chat\nbulk: [web]\n")
    out = tmp_path / "ds.npz"
    assert egw(["dataset", "build", "--input", str(root), "--taxonomy", str(tax), "--out", str(out),
                "--max-per-class", "4", "--jobs", "1", "--no-progress"]) == 0
    ds = load_dataset(out)
    assert ds.labels == ["bulk", "realtime"] and np.bincount(ds.y).tolist() == [4, 4]
    assert ds.manifest["classes"]["realtime"] == ["chat", "voice"]
    tax.write_text("a: [web]\nb: [web]\n")
    assert egw(["dataset", "build", "--input", str(root), "--taxonomy", str(tax), "--out", str(out),
                "--no-progress"]) == 2
    assert "in both" in capsys.readouterr().err


def test_bad_files_error_and_skip_bad(tmp_path, capsys):
    root = _make_tree(tmp_path / "in", n_files=1)
    (root / "web" / "empty.pcap").write_bytes(b"")
    (root / "chat" / "notes.pcap").write_text("this is not a capture")
    good = (root / "voice" / "cap0.pcap").read_bytes()
    (root / "voice" / "cut.pcap").write_bytes(good[:-25])
    out = tmp_path / "ds.npz"
    out.write_bytes(b"previous content")
    rc = egw(["dataset", "build", "--input", str(root), "--out", str(out), "--jobs", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and ".pcap:" in err
    assert out.read_bytes() == b"previous content"  # nothing already written is touched
    assert not list(tmp_path.glob(".ds.npz.*"))
    rc = egw(["dataset", "build", "--input", str(root), "--out", str(out), "--jobs", "2",
              "--no-progress", "--skip-bad", "--strict"])
    text = capsys.readouterr().out
    assert rc == 0 and "skipped 3 bad file(s)" in text
    assert "empty.pcap: empty file" in text and "notes.pcap: not a pcap" in text and "cut.pcap: truncated" in text
    ds = load_dataset(out)
    assert len(ds.manifest["skipped"]) == 3 and len(ds.X) == 18


def test_splits_session_disjoint_stratified_and_duplicates_together():
    rng = np.random.default_rng(0)
    n_sess = 300
    X = rng.random((n_sess, 4)).astype(np.float32)
    y = np.repeat(np.arange(3), n_sess // 3)
    sess = np.arange(n_sess)
    X[10] = X[11] = X[150]  # identical vectors in three sessions (one of another class)
    split, info = assign_splits(X, y, sess, seed=1)
    assert split[10] == split[11] == split[150]
    assert info["sessions_merged_by_duplicate_vectors"] == 2
    for c in range(3):
        frac = np.bincount(split[y == c], minlength=3) / 100
        assert np.allclose(frac, [0.8, 0.1, 0.1], atol=0.03)
    again, _ = assign_splits(X, y, sess, seed=1)
    assert np.array_equal(split, again)
    # by file: classes with >= min_files files keep each file on one side
    files = {int(s): int(s) // 10 for s in sess}
    split, info = assign_splits(X, y, sess, seed=2, file_of_session=files, min_files=5)
    for f in range(30):
        assert len(np.unique(split[np.array([files[s] == f for s in sess])])) == 1
    assert info["classes_split_by_file"] == ["0", "1", "2"]


def test_audit_reports_duplicates_and_probe(tmp_path, capsys):
    root = _make_tree(tmp_path / "in", n_files=2)
    out = tmp_path / "ds.npz"
    egw(["dataset", "build", "--input", str(root), "--out", str(out), "--jobs", "1", "--no-progress"])
    rep = audit_dataset(load_dataset(out))
    assert rep["duplicate_leakage"] is False and rep["sessions_in_several_splits"] == 0
    assert "macro_f1" in rep["probe"] or "scikit-learn" in rep["probe"]["skipped"]
    # plant a duplicate across splits: the audit must see it
    ds = load_dataset(out)
    i_tr, i_te = np.flatnonzero(ds.split == 0)[0], np.flatnonzero(ds.split == 2)[0]
    X = ds.X.copy()
    X[i_te] = X[i_tr]
    bad = tmp_path / "bad.npz"
    save_dataset(bad, X, ds.y, ds.session, ds.split, ds.labels, ds.preprocess, ds.manifest)
    rep = audit_dataset(load_dataset(bad), probe=False)
    assert rep["duplicate_leakage"] and rep["duplicates_across_splits"]["train/test"]["vectors"] == 1
    assert "duplicate leakage across splits: YES" in format_audit(rep)
    assert egw(["dataset", "audit", str(out)]) == 0
    assert "shortcut probe" in capsys.readouterr().out


def _write_idx(path: Path, arr: np.ndarray) -> None:
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(head + arr.astype(np.uint8).tobytes())


def test_build_from_idx_keeps_shipped_split(tmp_path):
    d = tmp_path / "12class" / "SessionL7"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    _write_idx(d / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (40, 28, 28)))
    _write_idx(d / "train-labels-idx1-ubyte.gz", np.repeat(np.arange(2), 20))
    _write_idx(d / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (6, 28, 28)))
    _write_idx(d / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 0, 1, 0, 1]))
    (tmp_path / "LABELS.txt").write_text("Label index -> class name\n\n12class/SessionL7:\n0 Chat\n1 Email\n")
    out = tmp_path / "idx.npz"
    assert egw(["dataset", "build", "--input", str(d), "--out", str(out), "--no-progress"]) == 0
    ds = load_dataset(out)
    assert ds.labels == ["Chat", "Email"] and ds.X.shape == (46, 784)
    assert (ds.split[40:] == 2).all() and np.sum(ds.split == 1) == 4
    assert ds.preprocess.layers == "l7" and ds.manifest["input_kind"] == "idx"


@pytest.mark.parametrize("content,msg", [(b"", "not a readable"), (b"PK\x03\x04junk", "not a readable")])
def test_load_dataset_bad_file(tmp_path, content, msg):
    f = tmp_path / "x.npz"
    f.write_bytes(content)
    with pytest.raises(DatasetError) as ei:
        load_dataset(f)
    assert ei.value.user_facing and str(f) in str(ei.value) and msg in str(ei.value)
    np.savez(f, X=np.zeros((1, 2)))
    with pytest.raises(DatasetError, match="missing"):
        load_dataset(f)
    with pytest.raises(DatasetError, match="no such"):
        load_dataset(tmp_path / "absent.npz")


def test_help_texts():
    for cmd in (["dataset", "--help"], ["dataset", "build", "--help"], ["dataset", "audit", "--help"]):
        with pytest.raises(SystemExit) as ei:
            egw(cmd)
        assert ei.value.code == 0


@pytest.mark.shared_data
def test_real_iscx_apps_with_taxonomy(tmp_path, shared_data):
    out = tmp_path / "iscx.npz"
    assert egw(["dataset", "build", "--input", str(shared_data / "iscx-apps"), "--taxonomy",
                str(shared_data / "taxonomy-iscx-traffic-types.yaml"), "--out", str(out),
                "--no-progress"]) == 0
    ds = load_dataset(out)
    assert ds.labels == ["chat", "email", "file_transfer", "p2p", "streaming", "voip"]
    assert 4500 < len(ds.X) < 6000  # the data README: 5,130 sessions after filtering
    rep = audit_dataset(ds, probe=False)
    assert not rep["duplicate_leakage"] and rep["sessions_in_several_splits"] == 0


@pytest.mark.shared_data
def test_real_idx_12class(tmp_path, shared_data):
    d = shared_data / "iscx-session784" / "12class" / "SessionL7"
    out = tmp_path / "idx.npz"
    assert egw(["dataset", "build", "--input", str(d), "--out", str(out), "--no-progress"]) == 0
    ds = load_dataset(out)
    assert len(ds.labels) == 12 and ds.labels[0] == "Chat" and np.sum(ds.split == 2) == 3244
    assert len(ds.X) == 29193 + 3244
