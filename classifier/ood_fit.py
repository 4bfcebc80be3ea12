"""`egw ood fit`: fit a bundle's out-of-distribution part on its training dataset.

Works on any existing bundle (training side: TensorFlow only to export the
embedding of a Keras model). Writes ``ood.npz``, ``embed.tflite`` (Keras families)
and ``card.json["ood"]`` (see :mod:`classifier.ood`). Choice by measurement:

- every candidate (one part: feature space x metric x ``k``; or the sum or maximum of the
  embedding and input cosine distances, each scaled by its validation quantile) gets its threshold from the validation
  sessions alone: the ``1 - reject_rate`` quantile of their scores;
- with ``--tune`` datasets (the *tuning part* of unfamiliar sources), the candidate
  that catches the largest mean share of their sessions at that threshold is
  chosen (ties: higher AUROC); without, the embedding (input for bundles without a
  Keras model), cosine, ``k = 1``.
The test splits and the test parts of unfamiliar sources are never read here.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from classifier.bundle import CARD_FILE, UNKNOWN, load_bundle
from classifier.metrics import auroc
from classifier.ood import (COMBINES, EMBED_MODEL, METRICS, OOD_FILE, combine, features,
                           knn_distance)

MAX_BANK = 4000          # training sessions kept (seeded sample): bounds the per-session cost
KS = (1, 5, 20)
DEFAULT_REJECT_RATE = 0.05


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


def _name(parts) -> str:
    return " + ".join(f"{sp}/{m}/k={k}" for sp, m, k in parts)


def _candidates(spaces: dict, bank_rows: np.ndarray, val_rows: np.ndarray, tunes: dict,
                reject_rate: float) -> tuple[list[dict], dict]:
    """Every single part (space x metric x k) and, with an embedding, each k's fusion of
    embedding and input cosine distances (each scaled by its validation quantile; their
    sum, and their maximum).
    Returns the candidates (threshold, val rejection, per tuning source: share caught
    and AUROC) and the features of the bank per (space, metric)."""
    banks, dist = {}, {}
    for (space, metric), feats in spaces.items():
        bank = banks[space, metric] = feats(bank_rows)
        for name, X in {"val": val_rows, **tunes}.items():
            F = feats(X)
            for k in KS:
                dist[space, metric, k, name] = knn_distance(F, bank, k, metric)
    q = 1 - reject_rate
    singles = [((sp, m, k),) for (sp, m) in spaces for k in KS]
    fused = [(("embedding", "cosine", k), ("input", "cosine", k)) for k in KS
             if ("embedding", "cosine") in spaces]
    out = []
    for parts, how in [(p, "sum") for p in singles] + [(p, h) for p in fused for h in COMBINES]:
        scales = [float(np.quantile(dist[(*p, "val")], q)) if len(parts) > 1 else 1.0
                  for p in parts]
        score = {name: combine([dist[(*p, name)] / sc for p, sc in zip(parts, scales)], how)
                 for name in ("val", *tunes)}
        thr = float(np.quantile(score["val"], q))
        c = {"name": _name(parts) + (f" ({how})" if len(parts) > 1 else ""), "combine": how,
             "parts": [{"space": sp, "metric": m, "k": k, "scale": sc}
                       for (sp, m, k), sc in zip(parts, scales)],
             "threshold": thr, "val_reject_rate": float((score["val"] > thr).mean()), "tune": {}}
        for name in tunes:
            st = score[name]
            c["tune"][name] = {"sessions": int(len(st)), "caught": float((st > thr).mean()),
                               "auroc": auroc(score["val"], st)}
        out.append(c)
    return out, banks


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
        raise OodFitError(f"{data}: needs train and val rows (the bank and the threshold)")
    rng = np.random.default_rng(seed)
    bank_idx = np.sort(rng.choice(tr, min(MAX_BANK, len(tr)), replace=False))
    val_idx = va[first_rows(ds.session[va])]
    tunes = {}
    for path in tune:
        t = _load(b, path)
        tunes[Path(path).stem] = t.X[first_rows(t.session)]

    # kpackets' last column is the inter-arrival time: synthetic in iscx-apps, real live
    cols = ds.X.shape[-1] - 1 if b.preprocess.repr == "kpackets" else None
    spaces = {("input", m): (lambda X, m=m: features(X, m, input_columns=cols)) for m in METRICS}
    flat = export_embedding(d)
    if flat is not None:
        (d / EMBED_MODEL).write_bytes(flat)
        runner = _Runner(d / EMBED_MODEL)
        spaces = {**{("embedding", m): (lambda X, m=m: features(X, m, runner.run(X)))
                     for m in METRICS}, **spaces}
    def spaces_raw(c: dict) -> dict:
        """The chosen parts' banks as stored: raw features in float16; a cosine part
        keeps only the columns that are not zero in every row."""
        out = {}
        for i, p in enumerate(c["parts"]):
            F = spaces[p["space"], "euclidean"](ds.X[bank_idx])      # raw: not normalised
            if p["metric"] == "cosine":
                keep = np.flatnonzero(np.abs(F).sum(0) > 0)
                F = F[:, keep]
                out[f"keep{i}"] = keep.astype(np.int32)
            out[f"bank{i}"] = F.astype(np.float16)
        return out

    log(f"ood fit: {len(bank_idx)} training sessions in the bank, {len(val_idx)} val sessions, "
        f"spaces {', '.join('/'.join(s) for s in spaces)}, k in {KS}"
        + (f", tuning on {', '.join(tunes)}" if tunes else ""))
    cands, banks = _candidates(spaces, ds.X[bank_idx], ds.X[val_idx], tunes, reject_rate)
    if tunes:
        best = max(cands, key=_score)
        how = ("largest mean share of the tuning sources' sessions above the threshold "
               "(ties: mean AUROC), among: " + "; ".join(c["name"] for c in cands))
    else:
        best = cands[0]
        how = f"no tuning sources given: the first candidate ({best['name']})"
    raw = spaces_raw(best)
    np.savez_compressed(d / OOD_FILE, **raw)
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
        "method": "knn", "name": best["name"],
        "what": (f"{best['combine']} of the parts' distances (cosine: 1 - cosine similarity) to the k-th "
                 "nearest of the bank's training sessions, each divided by its scale, in the "
                 "penultimate-layer embedding (embed.tflite) or the input vector"
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
        "bank_rows": int(len(bank_idx)), "data": str(data),
        "command": "egw " + " ".join(argv) if argv else None,
        "seconds": round(time.time() - t0, 1),
    }
    update_card(d, ood=ood)
    # the threshold again, from the scorer as the bundle loads it (float16 banks)
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
