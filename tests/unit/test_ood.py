"""The bundle's out-of-distribution part: `egw ood fit` on any family, scores in LiteRT/numpy."""
from __future__ import annotations

import json

import numpy as np
import pytest

from classifier.metrics import auroc
from classifier.ood import knn_distance, normalise


def test_auroc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    a, o = rng.normal(0, 1, 40), rng.normal(1, 1, 30)
    a[:5] = o[:5]                                     # ties count half
    pairs = (o[None, :] > a[:, None]).mean() + 0.5 * (o[None, :] == a[:, None]).mean()
    assert auroc(a, o) == pytest.approx(pairs)
    assert auroc(a, a + 10) == 1.0 and auroc(a + 10, a) == 0.0 and auroc([], o) is None


def test_knn_distance_is_cosine_distance_to_kth_neighbour():
    bank = normalise(np.array([[1, 0], [0, 1], [1, 1]], np.float32))
    q = normalise(np.array([[1, 0], [-1, 0]], np.float32))
    assert knn_distance(q, bank, 1) == pytest.approx([0.0, 1.0 + 0.0], abs=1e-6)
    assert knn_distance(q, bank, 2)[0] == pytest.approx(1 - np.sqrt(0.5), abs=1e-6)


tf = pytest.importorskip("tensorflow")
from tests.unit.test_models_train import _kpackets_npz  # noqa: E402


def _unfamiliar(X, seed=1):
    """Sessions unlike the synthetic classes (random bytes everywhere): all bytes zero but
    one high one, full-size packets."""
    rng = np.random.default_rng(seed)
    U = X.copy()
    nb = X.shape[2] - 3
    U[:, :, :nb] = 0
    U[:, :, 1] = (250 + rng.integers(0, 6, U.shape[:2])) / 255
    U[:, :, nb] = 1.0
    return U


@pytest.mark.parametrize("model,space", [("tinykp", "embedding"), ("forest", "input")])
def test_train_fits_ood_and_refit_with_tuning_source(tmp_path, model, space):
    from classifier.bundle import load_bundle
    from classifier.dataset import load_dataset, save_dataset
    from egw_cli.main import main

    data = tmp_path / "d.npz"
    X, y = _kpackets_npz(data, n=180)
    out = tmp_path / model
    assert main(["train", "--model", model, "--data", str(data), "--out", str(out), "--epochs", "3",
                 "--no-progress", "--trees", "5", "--max-leaves", "16"]) == 0
    card = json.loads((out / "card.json").read_text())["ood"]
    assert card["name"] == f"{space}/cosine/k=1" and "no tuning" in card["chosen_by"]
    assert (out / "ood.npz").is_file() and (out / "embed.tflite").is_file() == (space == "embedding")
    b = load_bundle(out)
    ds = load_dataset(data)
    val = ds.X[ds.split == 1]
    # the threshold rejects about --reject-rate of the validation sessions, by the bundle's own score
    assert (b.ood_score(val) > b.ood.threshold).mean() == pytest.approx(card["val_reject_rate"])
    U = _unfamiliar(X)
    assert auroc(b.ood_score(val), b.ood_score(U)) > 0.9
    assert [lab for lab, _ in b.classify(U)].count("unknown") >= 0.75 * len(U)

    # refit with a tuning source: every candidate is measured on it and recorded
    tune = tmp_path / "tune.npz"
    save_dataset(tune, U[:60], np.zeros(60, np.int64), np.arange(60), np.zeros(60, np.int8), ["u"],
                 ds.preprocess, {"argv": ["synthetic"]})
    assert main(["ood", "fit", "--model", str(out), "--data", str(data), "--tune", str(tune),
                 "--reject-rate", "0.1"]) == 0
    card = json.loads((out / "card.json").read_text())["ood"]
    assert card["reject_rate_target"] == 0.1 and card["tuning_sources"] == {"tune": 60}
    # single parts: space x metric x k; with an embedding also one fusion per k
    assert len(card["candidates"]) == (3 * 2 * 2 + 3 if space == "embedding" else 3 * 2)
    best = max(c["tune"]["tune"]["caught"] for c in card["candidates"])
    assert card["tune"]["tune"]["caught"] == best
    b = load_bundle(out)
    assert [(p.space, p.metric, p.k, p.scale) for p in b.ood.parts] == [
        (p["space"], p["metric"], p["k"], p["scale"]) for p in card["parts"]]
    # the bundle's own score puts the threshold where the fit said
    assert (b.ood_score(val) > b.ood.threshold).mean() == pytest.approx(card["val_reject_rate"])
    fused = [c for c in card["candidates"] if len(c["parts"]) == 2]
    assert all(c["name"].startswith("embedding/cosine") for c in fused)
    assert card["command"].startswith("egw ood fit")


def test_ood_fit_user_errors(tmp_path, capsys):
    from classifier.dataset import save_dataset
    from classifier.preprocess import Preprocess
    from egw_cli.main import main

    data = tmp_path / "d.npz"
    _kpackets_npz(data)
    out = tmp_path / "f"
    assert main(["train", "--model", "forest", "--data", str(data), "--out", str(out),
                 "--no-progress", "--trees", "3"]) == 0
    other = tmp_path / "other.npz"
    save_dataset(other, np.zeros((4, 3, 9), np.float32), np.zeros(4, np.int64), np.arange(4),
                 np.zeros(4, np.int8), ["a"], Preprocess(repr="kpackets", k=3, n_bytes=6, idle_timeout=5),
                 {"argv": ["x"]})
    from classifier.ood_fit import OodFitError, fit

    with pytest.raises(OodFitError, match="other preprocessing"):
        fit(out, str(data), tune=[str(other)])
    with pytest.raises(OodFitError, match="reject-rate"):
        fit(out, str(data), reject_rate=1.5)
