"""Model bundle runtime: loading, errors, LiteRT predictions, open-set threshold."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from classifier.bundle import DEFAULT_BUNDLE_DIR, UNKNOWN, BundleError, load_bundle
from classifier.preprocess import Preprocess

REPO = Path(__file__).resolve().parents[2]


def test_bundle_module_does_not_import_tensorflow():
    code = ("import sys, classifier.bundle, classifier.evaluate, classifier.metrics, "
            "classifier.cli_models; assert 'tensorflow' not in sys.modules, 'TF imported'; "
            "assert 'keras' not in sys.modules, 'keras imported'")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    pytest.importorskip("tensorflow")
    from classifier.export import bundle_from_keras
    from classifier.nn import tiny_nas
    from classifier.nn.common import set_seed

    set_seed(0)
    rng = np.random.default_rng(0)
    X = rng.random((48, 64), dtype=np.float32)
    y = (X[:, 0] > 0.5).astype(np.int64) + (X[:, 1] > 0.5)
    model = tiny_nas.build((64,), 3)
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    d = tmp_path_factory.mktemp("bundle")
    bundle_from_keras(model, d, ["a", "b", "c"], Preprocess(repr="session784", n_bytes=64), X,
                      threshold=0.5, card={"model": "tiny"})
    return d, model, X


def test_load_and_predict_matches_keras(tiny_bundle):
    d, model, X = tiny_bundle
    ref = model.predict(X, verbose=0)
    bf = load_bundle(d, prefer_int8=False)
    bq = load_bundle(d)
    assert bq.model_file.name == "model.int8.tflite" and bq.quantized
    assert bf.model_file.name == "model.tflite" and not bf.quantized
    assert bq.labels == ["a", "b", "c"]
    assert bq.preprocess.repr == "session784" and bq.preprocess.n_bytes == 64
    assert bq.input_shape == (-1, 64) and bq.feature_shape == (64,)
    assert bq.threshold == 0.5 and bq.card["model"] == "tiny"
    pf = bf.predict(X)
    pq = bq.predict(X)
    assert pf.shape == pq.shape == (48, 3)
    np.testing.assert_allclose(pf, ref, atol=1e-5)
    assert np.abs(pq - ref).max() < 0.05
    assert (pq.argmax(1) == ref.argmax(1)).mean() >= 0.9
    # single sample, batch of 1 and a batch bigger than max_batch agree
    np.testing.assert_allclose(bf.predict(X[0]), pf[:1], atol=1e-6)
    bf.max_batch = 7
    np.testing.assert_allclose(bf.predict(X), pf, atol=1e-6)


def test_classify_threshold(tiny_bundle):
    d, _, X = tiny_bundle
    b = load_bundle(d, prefer_int8=False)
    probs = b.predict(X)
    out = b.classify(X)
    for (lab, conf), p in zip(out, probs):
        assert conf == pytest.approx(float(p.max()), abs=1e-6)
        assert lab == (UNKNOWN if p.max() < 0.5 else b.labels[int(p.argmax())])
    b.threshold = 1.01
    assert all(lab == UNKNOWN for lab, _ in b.classify(X[:3]))
    b.threshold = 0.0
    assert all(lab != UNKNOWN for lab, _ in b.classify(X[:3]))


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("breakage,needle", [
    ("no_dir", "bundle directory not found"),
    ("no_labels", "labels.json: missing bundle file"),
    ("bad_labels", "labels.json"),
    ("bad_card", "card.json: not valid JSON"),
    ("bad_preprocess", "preprocess.json"),
    ("bad_tflite", "model.int8.tflite: cannot load TFLite model"),
    ("no_models", "model.tflite: missing bundle file"),
    ("label_count", "3 outputs"),
])
def test_bundle_errors_name_file(tiny_bundle, tmp_path, breakage, needle):
    d = _copy(tiny_bundle[0], tmp_path / "b")
    if breakage == "no_dir":
        d = tmp_path / "nope"
    elif breakage == "no_labels":
        (d / "labels.json").unlink()
    elif breakage == "bad_labels":
        (d / "labels.json").write_text('{"a": 1}')
    elif breakage == "bad_card":
        (d / "card.json").write_text("{not json")
    elif breakage == "bad_preprocess":
        (d / "preprocess.json").write_text('{"repr": "nonsense"}')
    elif breakage == "bad_tflite":
        (d / "model.int8.tflite").write_bytes(b"garbage" * 10)
    elif breakage == "no_models":
        (d / "model.int8.tflite").unlink()
        (d / "model.tflite").unlink()
    elif breakage == "label_count":
        (d / "labels.json").write_text(json.dumps(["a", "b"]))
    with pytest.raises(BundleError) as ei:
        load_bundle(d)
    assert ei.value.user_facing is True
    assert needle in str(ei.value)
    assert str(d) in str(ei.value)


def test_default_bundle_loads():
    if not (DEFAULT_BUNDLE_DIR / "model.tflite").exists():
        pytest.skip("no embedded default model yet")
    b = load_bundle()
    assert b.path == DEFAULT_BUNDLE_DIR
    assert b.labels == ["chat", "email", "file_transfer", "p2p", "streaming", "voip"]
    assert 0.0 <= b.threshold < 1.0
    files = {p.name: p.stat().st_size for p in DEFAULT_BUNDLE_DIR.iterdir() if p.is_file()}
    ood = files.pop("ood.npz", 0) + files.pop("embed.tflite", 0)
    assert sum(files.values()) < 1_000_000
    # the OOD part (aggregates of training sessions, classifier/ood.py) has its own budget
    assert 0 < ood < 1_000_000 and b.ood is not None
    x = np.zeros((2, *b.feature_shape), np.float32)
    p = b.predict(x)
    assert p.shape == (2, 6) and np.allclose(p.sum(1), 1.0, atol=0.05)
    assert b.card["metrics"]["int8"]["test"]["macro_f1"] > 0.80


@pytest.mark.parametrize("name", ["labels.json", "preprocess.json", "card.json"])
def test_oversized_json_rejected_naming_file(tmp_path, name):
    """Valid JSON padded past its cap (whitespace): refused before it is parsed."""
    from classifier.bundle import MAX_FILE_BYTES

    d = _copy(DEFAULT_BUNDLE_DIR, tmp_path / "b")
    with open(d / name, "ab") as fh:
        fh.write(b" " * MAX_FILE_BYTES[name])
    with pytest.raises(BundleError) as ei:
        load_bundle(d)
    msg = str(ei.value)
    assert str(d / name) in msg and "limit" in msg and "\n" not in msg


@pytest.mark.parametrize("name", ["model.int8.tflite", "model.tflite"])
def test_oversized_tflite_rejected_naming_file(tmp_path, monkeypatch, name):
    from classifier.bundle import MAX_FILE_BYTES

    d = _copy(DEFAULT_BUNDLE_DIR, tmp_path / "b")
    if name == "model.tflite":
        (d / "model.int8.tflite").unlink()
    monkeypatch.setitem(MAX_FILE_BYTES, name, (d / name).stat().st_size - 1)
    with pytest.raises(BundleError, match=f"{name}: .*limit") as ei:
        load_bundle(d)
    assert str(d / name) in str(ei.value)


def test_deeply_nested_json_is_a_bundle_error(tmp_path):
    d = _copy(DEFAULT_BUNDLE_DIR, tmp_path / "b")
    (d / "labels.json").write_text("[" * 100_000)
    with pytest.raises(BundleError, match="labels.json: nested too deeply"):
        load_bundle(d)
