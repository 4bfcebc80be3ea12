"""``egw dataset audit``: make leakage visible instead of assuming it away.

Reports per-class counts per split; sessions present in more than one split;
exact duplicate sample vectors shared across splits (train/val, train/test,
val/test) and within train; vectors that occur under more than one label; and a
*shortcut probe*: a small RandomForest trained on the header bytes alone (every
byte of each packet's IP and transport header, TCP options included, i.e. what
masking left of them; ``classifier.fields`` finds them) and scored on the
validation split; and, on request, per-field *permutation importance*: which
header fields and payload byte ranges a model leans on. A probe far above the
majority-class baseline means the headers still carry class information that is
not the application's payload (e.g. lengths, windows, ports); compare it with a
full model's score. Needs scikit-learn (the ``train`` extra); says so if absent.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from classifier.dataset import SPLIT_NAMES, Dataset
from classifier.fields import dataset_fields, field_names, header_mask, permute_field
from classifier.splits import row_hashes

SPLIT_CODES = {"val": 1, "test": 2}

def _header_features(ds: Dataset, fields) -> np.ndarray | None:
    """Every sample with all but its IP and transport header bytes (options included) zeroed:
    what the probe sees. None for payload-only datasets."""
    if ds.preprocess.layers != "all":
        return None
    flat = ds.X.reshape(len(ds.X), -1)
    return np.where(header_mask(fields, flat.shape[1]), flat, np.float32(0))


def audit_dataset(ds: Dataset, probe: bool = True, seed: int = 0, max_train: int = 20000,
                  importance: bool = False, model: str | None = None, split: str = "val",
                  repeats: int = 2) -> dict[str, Any]:
    """The leakage report. ``probe``: a forest on header bytes only; ``importance``: per-field
    permutation importance of ``model`` (a bundle directory) or, without one, of a forest
    on the whole sample, scored on ``split`` (val by default: the test split stays unread)."""
    rep: dict[str, Any] = {"path": ds.path, "samples": int(len(ds.X)), "labels": ds.labels,
                           "repr": ds.preprocess.repr, "layers": ds.preprocess.layers,
                           "counts": ds.counts()}
    # sessions on more than one side
    pairs = np.unique(np.stack([ds.session, ds.split.astype(np.int64)], 1), axis=0)
    s_ids, s_n = np.unique(pairs[:, 0], return_counts=True)
    rep["sessions_in_several_splits"] = int(np.sum(s_n > 1))
    # exact duplicate vectors
    hashes = row_hashes(ds.X)
    by_split: dict[int, set] = {s: set() for s in SPLIT_NAMES}
    labels_of: dict[bytes, set] = {}
    for h, s, y in zip(hashes, ds.split.tolist(), ds.y.tolist()):
        by_split[s].add(h)
        labels_of.setdefault(h, set()).add(y)
    dup = {}
    for a, b in ((0, 1), (0, 2), (1, 2)):
        shared = by_split[a] & by_split[b]
        rows_b = sum(1 for h, s in zip(hashes, ds.split.tolist()) if s == b and h in shared)
        dup[f"{SPLIT_NAMES[a]}/{SPLIT_NAMES[b]}"] = {"vectors": len(shared), f"{SPLIT_NAMES[b]}_rows": rows_b}
    rep["duplicates_across_splits"] = dup
    rep["duplicate_leakage"] = any(v["vectors"] for v in dup.values())
    n_train = int(np.sum(ds.split == 0))
    rep["duplicates_within_train"] = n_train - len(by_split[0])
    rep["vectors_with_several_labels"] = sum(1 for v in labels_of.values() if len(v) > 1)
    # shortcut probe
    fields = dataset_fields(ds.X, ds.preprocess) if (probe or importance) else None
    rep["probe"] = (_probe(ds, fields, seed, max_train, split) if probe
                    else {"skipped": "disabled (--no-probe)"})
    if importance:
        rep["importance"] = field_importance(ds, fields, model, split, seed, max_train, repeats)
    return rep

def _scored_rows(ds: Dataset, split: str) -> tuple[np.ndarray, str]:
    """Rows of ``split`` (val or test), falling back to the other one when it is empty."""
    want = SPLIT_CODES[split]
    other = 2 if want == 1 else 1
    if np.any(ds.split == want):
        return ds.split == want, split
    return ds.split == other, SPLIT_NAMES[other]


def _probe(ds: Dataset, fields, seed: int, max_train: int, split: str) -> dict[str, Any]:
    feats = _header_features(ds, fields)
    if feats is None:
        return {"skipped": "layers=l7: X holds no header bytes, nothing to probe"}
    tr = ds.split == 0
    te, scored_on = _scored_rows(ds, split)
    if not tr.any() or not te.any():
        return {"skipped": "needs samples in train and in val (or test)"}
    varying = np.flatnonzero(feats[tr].std(0) > 0)
    flat = ds.X.reshape(len(ds.X), -1)
    values: dict[str, set] = {}
    for i in np.flatnonzero(tr)[:5000]:
        for nm, a, z in fields[i]:
            if not nm.startswith(("payload", "pkt.")):
                values.setdefault(nm, set()).add(flat[i, a:z].tobytes())
    varying_fields = sorted(nm for nm, v in values.items() if len(v) > 1)
    out: dict[str, Any] = {"header": "whole IP + transport header of every packet, options included",
                           "features": int(feats.shape[1]), "varying_fields": varying_fields,
                           "varying_positions": varying.tolist()[:200]}
    try:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.metrics import accuracy_score, f1_score
    except ImportError:
        out["skipped"] = "scikit-learn not installed (pip install 'sdn-egw[train]'): no probe score"
        return out
    rng = np.random.default_rng(seed)
    tri = np.flatnonzero(tr)
    if len(tri) > max_train:
        tri = np.sort(rng.choice(tri, size=max_train, replace=False))
    clf = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    clf.fit(feats[tri], ds.y[tri])
    pred = clf.predict(feats[te])
    yt = ds.y[te]
    maj = np.bincount(ds.y[tri]).argmax()
    out.update({
        "model": "RandomForest(100 trees) on header bytes only",
        "scored_on": scored_on,
        "macro_f1": round(float(f1_score(yt, pred, average="macro")), 4),
        "accuracy": round(float(accuracy_score(yt, pred)), 4),
        "majority_accuracy": round(float(np.mean(yt == maj)), 4),
        "majority_macro_f1": round(float(f1_score(yt, np.full_like(yt, maj), average="macro")), 4),
        "chance_macro_f1": round(1.0 / max(1, len(np.unique(yt))), 4),
    })
    return out

def field_importance(ds: Dataset, fields, model: str | None, split: str, seed: int,
                     max_train: int, repeats: int = 2) -> dict[str, Any]:
    """Permutation importance per header field / payload range: the drop in macro-F1 when
    that field's bytes are shuffled across the scored samples (all packets at once)."""
    try:
        from sklearn.metrics import f1_score
    except ImportError:
        return {"skipped": "scikit-learn not installed (pip install 'sdn-egw[train]')"}
    rows, scored_on = _scored_rows(ds, split)
    idx = np.flatnonzero(rows)
    if not len(idx):
        return {"skipped": "no val or test samples"}
    shape = ds.X.shape[1:]
    if model:
        from classifier.bundle import load_bundle
        b = load_bundle(model)
        if b.preprocess.to_dict() != ds.preprocess.to_dict():
            return {"skipped": f"{model}: the bundle's preprocess.json differs from the dataset's"}
        predict, what = (lambda x: b.predict(x.reshape(len(x), *shape)).argmax(1)), f"bundle {model} (LiteRT)"
    else:
        from sklearn.ensemble import RandomForestClassifier
        rng = np.random.default_rng(seed)
        tri = np.flatnonzero(ds.split == 0)
        if len(tri) > max_train:
            tri = np.sort(rng.choice(tri, size=max_train, replace=False))
        clf = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
        clf.fit(ds.X[tri].reshape(len(tri), -1), ds.y[tri])
        predict, what = clf.predict, "RandomForest(100 trees) on the whole sample"
    flat = ds.X[idx].reshape(len(idx), -1)
    sub = [fields[i] for i in idx]
    y = ds.y[idx]
    base = float(f1_score(y, predict(flat), average="macro"))
    rng = np.random.default_rng(seed)
    out = []
    for name in field_names(sub):
        drops = []
        for _ in range(repeats):
            xp = permute_field(flat, sub, name, rng)
            drops.append(base - float(f1_score(y, predict(xp), average="macro")))
        n = sum(1 for spans in sub if any(nm == name for nm, _a, _z in spans))
        out.append({"field": name, "macro_f1_drop": round(float(np.mean(drops)), 4),
                    "samples_with_field": n})
    out.sort(key=lambda r: -r["macro_f1_drop"])
    return {"model": what, "scored_on": scored_on, "repeats": repeats,
            "baseline_macro_f1": round(base, 4), "fields": out}


def format_audit(rep: dict[str, Any]) -> str:
    from classifier.build import format_counts
    lines = [f"dataset {rep['path']}: {rep['samples']} samples, {len(rep['labels'])} classes, "
             f"repr {rep['repr']} (layers {rep['layers']})", format_counts(rep["counts"]), ""]
    lines.append(f"sessions in more than one split: {rep['sessions_in_several_splits']}")
    for k, v in rep["duplicates_across_splits"].items():
        rows = [x for x in v if x.endswith("_rows")][0]
        lines.append(f"exact duplicate vectors {k}: {v['vectors']} ({v[rows]} {rows.replace('_', ' ')})")
    lines.append("duplicate leakage across splits: " + ("YES" if rep["duplicate_leakage"] else "none"))
    lines.append(f"duplicate vectors within train: {rep['duplicates_within_train']}; "
                 f"vectors under more than one label: {rep['vectors_with_several_labels']}")
    p = rep["probe"]
    if "macro_f1" in p:
        lines.append(f"shortcut probe ({p['model']}, whole headers with options, "
                     f"{len(p['varying_fields'])} fields vary): macro-F1 {p['macro_f1']:.3f}, "
                     f"accuracy {p['accuracy']:.3f} on {p['scored_on']} "
                     f"(majority class: accuracy {p['majority_accuracy']:.3f}, macro-F1 "
                     f"{p['majority_macro_f1']:.3f})")
        if p["varying_fields"]:
            lines.append(f"  header fields still varying after masking: {', '.join(p['varying_fields'])}")
    else:
        lines.append(f"shortcut probe skipped: {p.get('skipped')}")
    imp = rep.get("importance")
    if imp and "fields" in imp:
        lines.append(f"permutation importance ({imp['model']}, {imp['scored_on']} split, macro-F1 "
                     f"{imp['baseline_macro_f1']:.3f}; drop when the field is shuffled across samples):")
        for r in imp["fields"][:15]:
            lines.append(f"  {r['field']:<32} {r['macro_f1_drop']:+.4f}  ({r['samples_with_field']} samples)")
    elif imp:
        lines.append(f"permutation importance skipped: {imp.get('skipped')}")
    return "\n".join(lines)
