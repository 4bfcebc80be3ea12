"""The bundle's out-of-distribution part: `egw ood fit` on any family, scores in LiteRT/numpy."""
from __future__ import annotations

import json

import numpy as np
import pytest

from classifier.metrics import auroc
from classifier.ood import mahalanobis_min, nearest_cosine, normalise


def test_auroc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    a, o = rng.normal(0, 1, 40), rng.normal(1, 1, 30)
    a[:5] = o[:5]                                     # ties count half
    pairs = (o[None, :] > a[:, None]).mean() + 0.5 * (o[None, :] == a[:, None]).mean()
    assert auroc(a, o) == pytest.approx(pairs)
    assert auroc(a, a + 10) == 1.0 and auroc(a + 10, a) == 0.0 and auroc([], o) is None


def test_nearest_cosine_and_mahalanobis_distances():
    C = normalise(np.array([[1, 0], [0, 1]], np.float32))
    q = normalise(np.array([[1, 0], [-1, 0], [1, 1]], np.float32))
    assert nearest_cosine(q, C) == pytest.approx([0.0, 1.0, 1 - np.sqrt(0.5)], abs=1e-6)
    means = np.array([[0, 0], [4, 0]], np.float32)
    P = np.diag([1.0, 0.25]).astype(np.float32)          # variance 1 along x, 4 along y
    Q = np.array([[1, 0], [0, 2], [3, 0]], np.float32)
    assert mahalanobis_min(Q, means, P) == pytest.approx([1.0, 1.0, 1.0])


def test_fitted_aggregates_hold_no_single_session():
    """What ood.npz stores: centroids of at least MIN_MEMBERS sessions, never one
    session's features, even when a few sessions stand far from the rest."""
    from classifier.ood_fit import MIN_MEMBERS, fit_centroids, fit_mahalanobis

    rng = np.random.default_rng(0)
    F = np.concatenate([rng.normal(0, 1, (200, 12)) + 5, rng.normal(0, 1, (3, 12)) - 50])
    a = fit_centroids(F, clusters=64, seed=0)
    assert a["members"].min() >= MIN_MEMBERS and a["members"].sum() <= len(F)
    U = normalise(F)[:, a["keep"]]
    assert (U @ a["centroids"].T).max() < 1 - 1e-4      # no centroid is one session's row
    m = fit_mahalanobis(F, np.r_[np.zeros(100), np.ones(103)].astype(int))
    assert m["means"].shape == (2, 12) and m["precision"].shape == (12, 12)


def test_parts_combine_by_sum_or_max():
    from classifier.ood import combine

    a, b = np.array([0.5, 2.0]), np.array([1.5, 0.25])
    assert combine([a, b], "sum") == pytest.approx([2.0, 2.25])
    assert combine([a, b], "max") == pytest.approx([1.5, 2.0])


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
    want = ("embedding/mahalanobis + input/centroids/256 (sum)" if space == "embedding"
            else "input/centroids/256")
    assert card["name"] == want and "no tuning" in card["chosen_by"]
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
    # single parts: centroids at two cluster counts per space, mahalanobis in the embedding;
    # with an embedding also each embedding part with each input part, summed and maximum
    assert len(card["candidates"]) == (5 + 3 * 2 * 2 if space == "embedding" else 2)
    best = max(c["tune"]["tune"]["caught"] for c in card["candidates"])
    assert card["tune"]["tune"]["caught"] == best
    b = load_bundle(out)
    assert [(p.space, p.method, p.scale) for p in b.ood.parts] == [
        (p["space"], p["method"], p["scale"]) for p in card["parts"]]
    # the bundle's own score puts the threshold where the fit said
    assert (b.ood_score(val) > b.ood.threshold).mean() == pytest.approx(card["val_reject_rate"])
    fused = [c for c in card["candidates"] if len(c["parts"]) == 2]
    assert all(c["name"].startswith("embedding/") and " + input/centroids/" in c["name"]
               for c in fused)
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


def test_evaluate_reports_what_unfamiliar_sessions_became_and_auroc(tmp_path, capsys):
    from classifier.dataset import load_dataset, save_dataset
    from classifier.evaluate import evaluate
    from egw_cli.main import main

    data = tmp_path / "d.npz"
    _kpackets_npz(data, n=180)
    out = tmp_path / "f"
    assert main(["train", "--model", "forest", "--data", str(data), "--out", str(out),
                 "--no-progress", "--trees", "5", "--max-leaves", "16"]) == 0
    ds = load_dataset(data)
    te = np.flatnonzero(ds.split == 2)
    U = _unfamiliar(ds.X[te])
    # the test sessions plus as many of an unknown class 'w'
    mixed = tmp_path / "mixed.npz"
    n = len(te)
    save_dataset(mixed, np.concatenate([ds.X[te], U]), np.r_[ds.y[te], np.full(n, 3)],
                 np.arange(2 * n), np.full(2 * n, 2, np.int8), ["x", "y", "z", "w"], ds.preprocess,
                 {"argv": ["synthetic"]})
    res = evaluate(str(out), str(mixed), progress=False)
    o = res["out_of_distribution"]
    assert o["classes"] == ["w"] and o["n"] == n and sum(o["predicted"].values()) == n
    assert o["predicted"].get("unknown", 0) == o["unknown"] >= 0.75 * n
    assert o["score"] == "ood" and o["auroc"] > 0.9
    assert res["open_set"]["score"] == "ood" and res["open_set"]["n"] == n
    assert main(["evaluate", "--model", str(out), "--data", str(mixed), "--json",
                 str(tmp_path / "e.json")]) == 0
    text = capsys.readouterr().out
    assert f"unknown {o['unknown']}" in text and "AUROC (ood score" in text
    saved = json.loads((tmp_path / "e.json").read_text())["out_of_distribution"]
    assert saved["predicted"] == o["predicted"]
    # only unfamiliar sessions: what they became, no AUROC (nothing to compare with)
    alone = tmp_path / "alone.npz"
    save_dataset(alone, U, np.zeros(n, np.int64), np.arange(n), np.full(n, 2, np.int8), ["w"],
                 ds.preprocess, {"argv": ["synthetic"]})
    res = evaluate(str(out), str(alone), progress=False)
    assert res["out_of_distribution"]["predicted"] == o["predicted"]
    assert res["out_of_distribution"]["auroc"] is None and "open_set" not in res


def test_bad_ood_files_name_the_file(tmp_path):
    """A truncated, hand-edited or old-format OOD part: one error naming the file; the
    bundle is not half-loaded."""
    import shutil

    from classifier.bundle import BundleError, load_bundle
    from egw_cli.main import main

    data = tmp_path / "d.npz"
    _kpackets_npz(data)
    good = tmp_path / "f"
    assert main(["train", "--model", "forest", "--data", str(data), "--out", str(good),
                 "--no-progress", "--trees", "3"]) == 0
    assert load_bundle(good).ood is not None

    def broken(name, edit):
        d = tmp_path / name
        shutil.copytree(good, d)
        edit(d)
        return d

    trunc = broken("trunc", lambda d: (d / "ood.npz").write_bytes((d / "ood.npz").read_bytes()[:100]))
    with pytest.raises(BundleError, match=r"trunc/ood.npz: cannot read"):
        load_bundle(trunc)

    def swap_keep(d):
        with np.load(d / "ood.npz") as z:
            a = dict(z)
        a["keep0"] = a["keep0"][:-1]
        np.savez(d / "ood.npz", **a)
    with pytest.raises(BundleError, match=r"shape/ood.npz: part 0 \(centroids\)"):
        load_bundle(broken("shape", swap_keep))

    def nan(d):
        with np.load(d / "ood.npz") as z:
            a = dict(z)
        a["centroids0"][0, 0] = np.nan
        np.savez(d / "ood.npz", **a)
    with pytest.raises(BundleError, match="NaN"):
        load_bundle(broken("nan", nan))

    def old_card(d):
        card = json.loads((d / "card.json").read_text())
        card["ood"]["parts"] = [{"space": "input", "metric": "cosine", "k": 1, "scale": 1.0}]
        (d / "card.json").write_text(json.dumps(card))
    with pytest.raises(BundleError, match="older kNN-bank format: refit it with `egw ood fit`"):
        load_bundle(broken("old", old_card))
