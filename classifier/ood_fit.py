"""`egw ood fit`: fit a bundle's out-of-distribution part on its training dataset.

Works on any existing bundle (training side: TensorFlow only to export the
embedding of a Keras model). Writes ``ood.npz``, ``embed.tflite`` (Keras families)
and ``card.json["ood"]`` (see :mod:`classifier.ood`). What is stored are aggregates of
the training sessions (k-means centroids of at least ``MIN_MEMBERS`` sessions, class
means, one covariance), never a session's own features. Choice by measurement:

- every candidate (one part: space x method, centroids at a few cluster counts; or the
  sum or maximum of an embedding part and an input part, each scaled by its validation
  quantile) gets its threshold from the validation sessions alone: the
  ``1 - reject_rate`` quantile of their scores;
- with ``--tune`` datasets (the *tuning part* of unfamiliar sources), the candidate
  that catches the largest mean share of their sessions at that threshold is
  chosen (ties: higher AUROC); without, :data:`DEFAULT_NAME` (what the tuning sources
  chose for the shipped default bundle, see docs/models.md), or for bundles without a
  Keras model the input centroids.
The test splits and the test parts of unfamiliar sources are never read here.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from classifier.bundle import CARD_FILE, UNKNOWN, load_bundle
from classifier.metrics import auroc
from classifier.ood import COMBINES, EMBED_MODEL, OOD_FILE, Part, combine, features, normalise

CLUSTERS = (64, 256)     # k-means cluster counts tried (fewer when the data is small)
MIN_MEMBERS = 5          # a centroid stands for at least this many training sessions
DEFAULT_REJECT_RATE = 0.05
OOD_METHOD = "aggregates"  # card["ood"]["method"]: what this fitter writes
MAX_FIT_ROWS = 20000     # training rows the aggregates are fitted on (seeded sample)
DEFAULT_NAME = "embedding/mahalanobis + input/centroids/256 (sum)"


class OodFitError(Exception):
    user_facing = True


def first_rows(session: np.ndarray) -> np.ndarray:
    """Index of each session's first row (what the gateway classifies), in row order."""
    _, first = np.unique(session, return_index=True)
    return np.sort(first)


def _load(bundle, path: str):
    from classifier.dataset import load_dataset

    ds = load_dataset(path)
    if ds.preprocess.to_dict() != bundle.preprocess.to_dict():
        raise OodFitError(f"{path}: built with other preprocessing than the bundle {bundle.path}; "
                          "rebuild it with --preprocess BUNDLE/preprocess.json")
    return ds


def export_embedding(model_dir: Path) -> bytes | None:
    """Float LiteRT model: the bundle input -> the input of its final (softmax) Dense
    layer, from ``model.keras``; None when the bundle has no Keras model or its last
    layer is not a Dense layer."""
    if not (model_dir / "model.keras").is_file():
        return None
    from classifier.export import load_keras, to_tflite
    from classifier.nn.common import keras

    m = load_keras(model_dir / "model.keras")
    last = m.layers[-1]
    if not isinstance(last, keras.layers.Dense):
        return None
    return to_tflite(keras.Model(m.inputs, last.input))


def fit_centroids(F: np.ndarray, clusters: int, seed: int) -> dict:
    """k-means (cosine: on unit rows) of the training features ``F``; clusters with fewer
    than :data:`MIN_MEMBERS` sessions are dropped. Arrays as :class:`Part` holds them."""
    from sklearn.cluster import KMeans

    F = normalise(F)
    k = max(1, min(clusters, len(F) // MIN_MEMBERS))
    km = KMeans(k, n_init=3, random_state=seed).fit(F)
    members = np.bincount(km.labels_, minlength=k)
    big = members >= MIN_MEMBERS
    C = normalise(km.cluster_centers_[big])
    keep = np.flatnonzero(np.abs(C).sum(0) > 0)
    return {"centroids": C[:, keep], "members": members[big], "keep": keep}


def fit_mahalanobis(F: np.ndarray, y: np.ndarray) -> dict:
    """Class means of the unit training features and the precision of their shared
    covariance (Ledoit-Wolf shrinkage)."""
    from sklearn.covariance import LedoitWolf

    F = normalise(F)
    classes = np.unique(y)
    means = np.stack([F[y == c].mean(0) for c in classes])
    resid = F - means[np.searchsorted(classes, y)]
    return {"means": means, "precision": LedoitWolf().fit(resid).precision_.astype(np.float32)}


def _part_name(p: dict) -> str:
    return f"{p['space']}/{p['method']}" + (f"/{p['clusters']}" if p["method"] == "centroids" else "")


def _candidates(feats: dict, y_fit: np.ndarray, tunes: list[str],
                reject_rate: float, seed: int) -> tuple[list[dict], dict]:
    """Every single part and, with an embedding, each fusion of an embedding part with an
    input centroids part (each scaled by its validation quantile; their sum, and their
    maximum). ``feats``: space -> (training features, {name: features}). Returns the candidates
    (threshold, val rejection, per tuning source: share caught and AUROC) and each part's
    fitted arrays by name."""
    fitted, dist = {}, {}
    for space, (train, named) in feats.items():
        specs = [{"space": space, "method": "centroids", "clusters": c,
                  "min_members": MIN_MEMBERS} for c in CLUSTERS]
        if space == "embedding":
            specs.insert(0, {"space": space, "method": "mahalanobis"})
        for spec in specs:
            arrays = (fit_mahalanobis(train, y_fit) if spec["method"] == "mahalanobis"
                      else fit_centroids(train, spec["clusters"], seed))
            name = _part_name(spec)
            fitted[name] = (spec, arrays)
            part = Part(space, spec["method"], arrays)
            for ev, F in named.items():
                dist[name, ev] = part.distance(F)
    q = 1 - reject_rate
    singles = [(n,) for n in fitted]
    emb = [n for n in fitted if n.startswith("embedding/")]
    inp = [n for n in fitted if n.startswith("input/centroids")]
    fused = [(e, i) for e in emb for i in inp]
    out = []
    for parts, how in [(p, "sum") for p in singles] + [(p, h) for p in fused for h in COMBINES]:
        scales = [float(np.quantile(dist[p, "val"], q)) if len(parts) > 1 else 1.0 for p in parts]
        scales = [s if s > 0 else 1.0 for s in scales]
        score = {ev: combine([dist[p, ev] / sc for p, sc in zip(parts, scales)], how)
                 for ev in ("val", *tunes)}
        thr = float(np.quantile(score["val"], q))
        c = {"name": " + ".join(parts) + (f" ({how})" if len(parts) > 1 else ""), "combine": how,
             "parts": [{**fitted[p][0], "scale": sc} for p, sc in zip(parts, scales)],
             "threshold": thr, "val_reject_rate": float((score["val"] > thr).mean()), "tune": {}}
        for name in tunes:
            st = score[name]
            c["tune"][name] = {"sessions": int(len(st)), "caught": float((st > thr).mean()),
                               "auroc": auroc(score["val"], st)}
        out.append(c)
    return out, {n: a for n, (_, a) in fitted.items()}


def _score(c: dict) -> tuple:
    t = c["tune"].values()
    return (float(np.mean([v["caught"] for v in t])), float(np.mean([v["auroc"] for v in t])))


def fit(model_dir, data: str, tune: list[str] = (), reject_rate: float = DEFAULT_REJECT_RATE,
        seed: int = 0, argv: list[str] | None = None, log=print) -> dict:
    """Fit and write the OOD part of bundle ``model_dir``; returns ``card["ood"]``."""
    from classifier.bundle import _Runner
    from classifier.export import update_card

    d = Path(model_dir)
    if not 0 < reject_rate < 1:
        raise OodFitError(f"--reject-rate {reject_rate}: must be between 0 and 1")
    t0 = time.time()
    b = load_bundle(d, with_ood=False)
    ds = _load(b, data)
    tr = np.flatnonzero(ds.split == 0)
    va = np.flatnonzero(ds.split == 1)
    if len(tr) == 0 or len(va) == 0:
        raise OodFitError(f"{data}: needs train and val rows (the fit and the threshold)")
    rng = np.random.default_rng(seed)
    fit_idx = np.sort(rng.choice(tr, min(MAX_FIT_ROWS, len(tr)), replace=False))
    val_idx = va[first_rows(ds.session[va])]
    tunes = {}
    for path in tune:
        t = _load(b, path)
        tunes[Path(path).stem] = t.X[first_rows(t.session)]

    # kpackets' last column is the inter-arrival time: synthetic in iscx-apps, real live
    cols = ds.X.shape[-1] - 1 if b.preprocess.repr == "kpackets" else None
    embed_of = None
    flat = export_embedding(d)
    if flat is not None:
        (d / EMBED_MODEL).write_bytes(flat)
        embed_of = _Runner(d / EMBED_MODEL).run
    evals = {"val": ds.X[val_idx], **tunes}
    feats = {}
    for space in (["embedding"] if embed_of else []) + ["input"]:
        f = ((lambda X: features(X, embed_of(np.asarray(X, np.float32)))) if space == "embedding"
             else (lambda X: features(X, input_columns=cols)))
        feats[space] = (f(ds.X[fit_idx]), {n: f(X) for n, X in evals.items()})

    log(f"ood fit: {len(fit_idx)} training sessions, {len(val_idx)} val sessions, "
        f"spaces {', '.join(feats)}"
        + (f", tuning on {', '.join(tunes)}" if tunes else ""))
    cands, fitted = _candidates(feats, ds.y[fit_idx], list(tunes), reject_rate, seed)
    if tunes:
        best = max(cands, key=_score)
        how = ("largest mean share of the tuning sources' sessions above the threshold "
               "(ties: mean AUROC), among: " + "; ".join(c["name"] for c in cands))
    else:
        fallback = "input/centroids/" + str(CLUSTERS[-1])
        best = next(c for c in cands if c["name"] == (DEFAULT_NAME if embed_of else fallback))
        how = (f"no tuning sources given: {best['name']} (what the tuning sources chose for "
               "the shipped default bundle)" if embed_of else
               f"no tuning sources given and no embedding: {best['name']}")
    stored = {}
    for i, p in enumerate(best["parts"]):
        for key, v in fitted[_part_name(p)].items():
            # centroids are unit rows: float16 is plenty; a precision matrix can hold
            # values past float16's range (a nearly singular covariance): float32
            stored[f"{key}{i}"] = (v.astype(np.int32) if v.dtype.kind != "f" else
                                   v.astype(np.float16) if key == "centroids" else
                                   v.astype(np.float32))
    np.savez_compressed(d / OOD_FILE, **stored)
    if all(p["space"] != "embedding" for p in best["parts"]) and (d / EMBED_MODEL).exists():
        (d / EMBED_MODEL).unlink()
    # the max-probability baseline on the same sessions, for the card
    pv = b.predict(ds.X[val_idx]).max(1)
    base_thr = float(np.quantile(pv, reject_rate))
    baseline = {}
    for name, X in tunes.items():
        pt = b.predict(X).max(1)
        baseline[name] = {"caught": float((pt < base_thr).mean()), "auroc": auroc(-pv, -pt)}
    ood = {
        "method": OOD_METHOD, "name": best["name"],
        "what": (f"{best['combine']} of the parts' distances, each divided by its scale: "
                 "centroids: 1 - cosine similarity to the nearest k-means centroid of at least "
                 f"{MIN_MEMBERS} training sessions; mahalanobis: the smallest Mahalanobis "
                 "distance to a class mean (shared covariance); features: unit rows of the "
                 "penultimate-layer embedding (embed.tflite) or of the input vector"
                 + (" without its inter-arrival column" if cols else "")
                 + f"; above the threshold: {UNKNOWN}"),
        "parts": best["parts"], "combine": best["combine"], "threshold": best["threshold"],
        "input_columns": cols,
        "reject_rate_target": reject_rate, "val_reject_rate": best["val_reject_rate"],
        "threshold_from": (f"{data}: the {1 - reject_rate:g} quantile of {len(val_idx)} val "
                           "sessions' scores"),
        "tuning_sources": {name: int(len(X)) for name, X in tunes.items()},
        "tune": best["tune"],
        "chosen_by": how, "candidates": cands,
        "baseline_max_probability": {"threshold": base_thr, "tune": baseline},
        "stores": "aggregates only (centroids, class means, a covariance), no session's features",
        "fit_rows": int(len(fit_idx)), "data": str(data),
        "command": "egw " + " ".join(argv) if argv else None,
        "seconds": round(time.time() - t0, 1),
    }
    update_card(d, ood=ood)
    # the threshold again, from the scorer as the bundle loads it (float16 arrays)
    sv = load_bundle(d).ood.score(ds.X[val_idx])
    ood["threshold"] = best["threshold"] = float(np.quantile(sv, 1 - reject_rate))
    ood["val_reject_rate"] = best["val_reject_rate"] = float((sv > ood["threshold"]).mean())
    update_card(d, ood=ood)
    load_bundle(d)      # the written part loads (raises BundleError naming the file if not)
    log(f"ood fit: {best['name']}, threshold {best['threshold']:.4f} "
        f"({best['val_reject_rate']:.1%} of val sessions rejected)"
        + "".join(f"; {n}: {v['caught']:.1%} caught, AUROC {v['auroc']:.3f}"
                  for n, v in best["tune"].items()) + f"; wrote {d / OOD_FILE}, {d / CARD_FILE}")
    return ood
