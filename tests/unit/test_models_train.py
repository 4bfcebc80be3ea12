"""`egw train` / `egw evaluate` end to end on a tiny synthetic dataset, and the forest family."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from classifier.bundle import load_bundle  # noqa: E402
from classifier.dataset import save_dataset  # noqa: E402
from classifier.preprocess import Preprocess  # noqa: E402


def _kpackets_npz(path, n=90, k=3, nb=6, seed=0):
    """3 classes told apart by packet length and a byte; values on the k/255 and L/1500 grids."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = np.zeros((n, k, nb + 3), np.float32)
    X[:, :, :nb] = rng.integers(0, 256, (n, k, nb)) / 255
    X[:, :, 0] = (40 + 60 * y[:, None] + rng.integers(0, 20, (n, k))) / 255
    X[:, :, nb] = (100 + 400 * y[:, None] + rng.integers(0, 100, (n, k))) / 1500
    X[:, :, nb + 1] = rng.integers(0, 2, (n, k))
    X[:, :, nb + 2] = 0.3
    split = np.array([0] * (n - 2 * (n // 6)) + [1] * (n // 6) + [2] * (n // 6), np.int8)
    pre = Preprocess(repr="kpackets", k=k, n_bytes=nb)
    save_dataset(path, X, y, np.arange(n), split, ["x", "y", "z"], pre, {"argv": ["synthetic"]})
    return X, y


@pytest.mark.parametrize("model", ["forest", "kpnet", "boosted", "tinykp"])
def test_train_bundle_evaluate(tmp_path, model, capsys):
    from classifier.evaluate import evaluate
    from egw_cli.main import main

    data = tmp_path / "d.npz"
    _kpackets_npz(data)
    out = tmp_path / model
    rc = main(["train", "--model", model, "--data", str(data), "--out", str(out), "--epochs", "2",
               "--seed", "1", "--no-progress", "--trees", "5", "--max-leaves", "16"])
    assert rc == 0
    for f in ("model.tflite", "model.int8.tflite", "labels.json", "preprocess.json", "card.json",
              "confusion.png", "per_class.png"):
        assert (out / f).is_file(), f
    assert (out / "model.keras").exists() == (model in ("kpnet", "tinykp"))
    card = json.loads((out / "card.json").read_text())
    assert card["model"] == model and card["seed"] == 1
    for kind in ("float", "int8"):
        assert card["metrics"][kind]["test"]["n"] == 15
    assert 0 <= card["threshold"] <= 1
    for key in ("params", "max_tensor", "flops", "flash_bytes_float", "flash_bytes_int8",
                "ram_bytes_float", "ram_bytes_int8"):
        assert card["sizes"][key] > 0, key
    assert card["training"]["seconds"] >= 0 and card["latency_ms_per_sample"]["int8"] > 0
    b = load_bundle(out)
    assert b.preprocess.repr == "kpackets" and b.labels == ["x", "y", "z"]
    res = evaluate(str(out), str(data), progress=False)
    assert res["sessions"] == 15
    assert res["closed_set"]["accuracy"] == pytest.approx(card["metrics"]["int8"]["test"]["accuracy"])
    if model in ("forest", "boosted"):
        assert res["closed_set"]["macro_f1"] > 0.8  # lengths separate the classes
    rc = main(["evaluate", "--model", str(out), "--data", str(data), "--json", str(tmp_path / "e.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "macro-F1" in text and "scored 15 sessions" in text and "unknown" in text
    assert json.loads((tmp_path / "e.json").read_text())["sessions"] == 15


def test_train_is_deterministic(tmp_path):
    from classifier.train import train

    data = tmp_path / "d.npz"
    _kpackets_npz(data)
    cards = [train("forest", str(data), str(tmp_path / f"o{i}"), seed=3, trees=4, max_leaves=8,
                   progress=False, log=lambda *_: None) for i in range(2)]
    assert (tmp_path / "o0" / "model.tflite").read_bytes() == (tmp_path / "o1" / "model.tflite").read_bytes()
    assert cards[0]["metrics"]["float"]["test"] == cards[1]["metrics"]["float"]["test"]


@pytest.mark.parametrize("family", ["forest", "boosted"])
def test_tree_models_in_litert_match_sklearn_and_int8(tmp_path, family):
    from classifier.export import bundle_from_keras
    from classifier.nn import forest

    X, y = _kpackets_npz(tmp_path / "d.npz", n=120)
    if family == "forest":
        est = forest.fit_forest(X, y, n_estimators=6, max_leaf_nodes=32, drop_last_column=True)
        m = forest.forest_to_keras(est, X.shape[1:], 3, drop_last_column=True)
    else:
        est = forest.fit_boosted(X, y, max_iter=8, max_leaf_nodes=7, drop_last_column=True)
        m = forest.boosted_to_keras(est, X.shape[1:], 3, drop_last_column=True)
    ref = est.predict_proba(forest.features(X, True))
    np.testing.assert_allclose(m.predict(X, verbose=0), ref, atol=1e-5)
    bundle_from_keras(m, tmp_path / "b", ["x", "y", "z"], Preprocess(repr="kpackets", k=3, n_bytes=6),
                      X, allow_float_fallback=True, save_keras=False)
    np.testing.assert_allclose(load_bundle(tmp_path / "b", prefer_int8=False).predict(X), ref, atol=1e-5)
    pq = load_bundle(tmp_path / "b").predict(X)
    assert (pq.argmax(1) == ref.argmax(1)).mean() >= 0.97


def test_cli_help_and_user_errors(tmp_path, capsys):
    from egw_cli.main import main

    for cmd in ("train", "evaluate"):
        with pytest.raises(SystemExit) as ei:
            main([cmd, "--help"])
        assert ei.value.code == 0
    data = tmp_path / "d.npz"
    _kpackets_npz(data)
    assert main(["train", "--model", "deepnfv", "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    assert "needs a image900 dataset" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "nope"), "--data", str(data)]) == 2
    assert "bundle directory not found" in capsys.readouterr().err


@pytest.mark.parametrize("towers", [1, 2])
def test_tinykp_int8_keeps_bytes_exact_and_agrees_with_float(tmp_path, towers):
    """The int8 model's input scale stays 1/255 (each byte its own level, so the embedding
    indexes the right row) and the int8 model answers like the float one; with two towers
    too (their probabilities averaged in one model)."""
    from ai_edge_litert.interpreter import Interpreter

    from classifier.export import bundle_from_keras
    from classifier.nn import loop, tinykp
    from classifier.nn.common import keras, set_seed

    set_seed(0)
    X, y = _kpackets_npz(tmp_path / "d.npz", n=150)
    m = tinykp.build(X.shape[1:], 3, conv1=8, conv2=8, width=16, towers=towers)
    Y = np.eye(3, dtype=np.float32)[y]
    loop.fit(m, loop.Batches(X, Y, batch_size=32), 15)
    if towers == 1:
        assert isinstance(m.get_layer("byte_index"), tinykp.ByteIndex)
    else:       # the output is the mean of the towers' probabilities
        heads = keras.Model(m.input, [m.get_layer(f"t{i}_probs").output for i in range(towers)])
        np.testing.assert_allclose(np.mean(heads.predict_on_batch(X[:5]), 0),
                                   m.predict_on_batch(X[:5]), atol=1e-5)
    bundle_from_keras(m, tmp_path / "b", ["x", "y", "z"], Preprocess(repr="kpackets", k=3, n_bytes=6), X)
    it = Interpreter(model_path=str(tmp_path / "b" / "model.int8.tflite"))
    scale, zero = it.get_input_details()[0]["quantization"]
    assert scale == pytest.approx(1 / 255) and zero == -128
    pf = load_bundle(tmp_path / "b", prefer_int8=False).predict(X)
    pq = load_bundle(tmp_path / "b").predict(X)
    assert (pf.argmax(1) == pq.argmax(1)).mean() >= 0.95
    # reloads from model.keras (the registered ByteIndex layer)
    again = keras.models.load_model(tmp_path / "b" / "model.keras")
    np.testing.assert_allclose(again.predict_on_batch(X[:5]), m.predict_on_batch(X[:5]), atol=1e-5)


def test_tinykp_augmentation_drops_packets_and_bytes():
    from classifier.nn import tinykp

    rng = np.random.default_rng(0)
    X = np.zeros((40, 5, 9), np.float32)
    X[:, :, :6] = (np.arange(1, 7) / 255)[None, None]
    X[:, :, 6] = (np.arange(1, 6) / 10)[None, :]
    A = tinykp.augment(X, rng, packet_drop=1.0, byte_dropout=0.0)
    assert np.allclose(A[:, 0], X[:, 0])                      # the first packet always stays
    assert (A[:, 4] == 0).all() and not np.allclose(A, X)    # one later packet dropped, rest shifted up
    B = tinykp.augment(X, rng, packet_drop=0.0, byte_dropout=0.5)
    zeroed = (B[:, :, :6] == 0).mean()
    assert 0.3 < zeroed < 0.7 and np.allclose(B[:, :, 6:], X[:, :, 6:])  # only bytes are dropped


def test_knn_in_litert_answers_like_sklearn(tmp_path):
    from sklearn.neighbors import KNeighborsClassifier

    from classifier.train import train

    data = tmp_path / "d.npz"
    X, y = _kpackets_npz(data, n=150)
    card = train("knn", str(data), str(tmp_path / "k"), progress=False, log=lambda *_: None,
                 neighbours=3)
    assert not (tmp_path / "k" / "model.int8.tflite").exists() and "int8_note" in card
    from classifier.nn.knn import signed_sizes
    tr = np.load(data)["split"] == 0
    ref = KNeighborsClassifier(3).fit(signed_sizes(X[tr]), y[tr]).predict_proba(signed_sizes(X))
    got = load_bundle(tmp_path / "k").predict(X)
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.97


def test_out_of_fold_teacher_has_a_column_per_label_and_rows_from_other_folds():
    """One column per dataset label (a label with no training row gets zeros), probabilities
    that sum to 1, and each row scored by trees that never saw its session: a label planted
    per session (and nowhere else) is not recalled out of fold."""
    from classifier.nn.forest import out_of_fold_boosted

    rng = np.random.default_rng(0)
    n, sessions = 200, 40
    groups = np.repeat(np.arange(sessions), n // sessions)
    y = groups % 3                                    # three labels used, a fourth exists
    X = rng.random((n, 4, 5)).astype(np.float32)
    X[:, 0, 0] = groups / sessions                    # the session id, readable
    p = out_of_fold_boosted(X, y, groups, n_classes=4, folds=5)
    assert p.shape == (n, 4) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert np.all(p[:, 3] == 0)
    assert (p.argmax(1) == y).mean() < 0.7           # not memorised: chance is 1/3


def test_training_output_is_clean_of_tensorflow_graph_errors_and_retracing(tmp_path):
    """ByteSGAN training and repeated predictions of several sizes, in a fresh process (C++
    logs go to file descriptor 2): none of TensorFlow's grappler errors ("remapper failed"
    on the discriminator's LeakyReluGrad) or retracing warnings reach the terminal."""
    import subprocess
    import sys

    script = """
import numpy as np
from classifier.nn.bytesgan import ByteSGAN
from classifier.nn import loop
rng = np.random.default_rng(0)
X = rng.random((96, 1480), dtype=np.float32); y = rng.integers(0, 3, 96)
gan = ByteSGAN((1480,), 3)
gan.fit(X[:48], y[:48], X[48:], epochs=2, batch_size=16, X_val=X[:20], y_val=y[:20],
        progress=False, steps_per_epoch=3, log=lambda *a: None)
for n in (5, 7, 11, 13, 17, 19, 23):
    loop.predict(gan.classifier, X[:n], batch_size=32)
from classifier.nn.common import keras
for n in range(8):      # several models, each traced once (as NAS children are)
    m = keras.Sequential([keras.Input((16,)), keras.layers.Dense(3, activation="softmax")])
    loop.predict(m, X[:10 + n, :16], batch_size=8)
print("done")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=300, cwd=str(Path(__file__).resolve().parents[2]))
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-3000:]
    assert "remapper failed" not in r.stderr, r.stderr[-3000:]
    assert "retracing" not in r.stderr, r.stderr[-3000:]


@pytest.mark.parametrize("model", ["forest", "tinykp"])
def test_no_test_never_scores_the_test_split(tmp_path, monkeypatch, capsys, model):
    """`egw train --no-test` (selection candidates): no row of the test split reaches the
    model, the card and the printout say the test split was not read, and `egw evaluate
    --split test` reads it afterwards."""
    import classifier.train as train_mod
    from classifier.dataset import load_dataset
    from egw_cli.main import main

    data = tmp_path / "d.npz"
    _kpackets_npz(data)
    ds = load_dataset(data)
    test_sessions = set(ds.session[ds.split == 2].tolist())
    seen = []
    real = train_mod.score_bundle

    def spy(out_dir, X, y, session, labels, prefer_int8):
        seen.extend(np.asarray(session).tolist())
        return real(out_dir, X, y, session, labels, prefer_int8)

    monkeypatch.setattr(train_mod, "score_bundle", spy)
    out = tmp_path / "cand"
    assert main(["train", "--model", model, "--data", str(data), "--out", str(out),
                 "--epochs", "2", "--no-progress", "--trees", "5", "--no-test"]) == 0
    printed = capsys.readouterr().out
    assert seen and not test_sessions & set(seen)
    card = json.loads((out / "card.json").read_text())
    assert card["metrics"]["int8"]["test"] is None and card["metrics"]["float"]["test"] is None
    assert card["metrics"]["int8"]["val"]["macro_f1"] > 0
    assert "not read (--no-test)" in card["protocol"]["test_reads"]
    assert "--no-test" in card["command"] and "test split not read" in printed
    assert not (out / "confusion.png").exists()
    # the same training without the flag does score them
    seen.clear()
    assert main(["train", "--model", model, "--data", str(data), "--out", str(tmp_path / "all"),
                 "--epochs", "2", "--no-progress", "--trees", "5"]) == 0
    assert test_sessions <= set(seen)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", str(data), "--split", "test"]) == 0
    assert "macro" in capsys.readouterr().out.lower()
