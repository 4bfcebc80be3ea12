"""``egw dataset audit``: make leakage visible instead of assuming it away.

Reports per-class counts per split; sessions present in more than one split;
exact duplicate sample vectors shared across splits (train/val, train/test,
val/test) and within train; vectors that occur under more than one label; and a
*shortcut probe*: a small RandomForest trained on the header bytes alone (the
first ``header_bytes`` bytes of each packet, i.e. what masking left of the IP and
transport headers) and scored on the test split. A probe far above the
majority-class baseline means the headers still carry class information that is
not the application's payload (e.g. lengths, windows, ports); compare it with a
full model's score. Needs scikit-learn (the ``train`` extra); says so if absent.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from classifier.dataset import SPLIT_NAMES, Dataset
from classifier.splits import row_hashes

def _header_features(ds: Dataset, header_bytes: int) -> np.ndarray | None:
    pre = ds.preprocess
    if pre.layers != "all":
        return None
    X = ds.X
    if pre.repr == "kpackets":
        return X[:, :, :min(header_bytes, pre.n_bytes)].reshape(len(X), -1)
    flat = X.reshape(len(X), -1)
    return flat[:, :min(header_bytes, flat.shape[1])]

def audit_dataset(ds: Dataset, probe: bool = True, header_bytes: int = 40, seed: int = 0,
                  max_train: int = 20000) -> dict[str, Any]:
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
    rep["probe"] = _probe(ds, header_bytes, seed, max_train) if probe else {"skipped": "disabled (--no-probe)"}
    return rep

def _probe(ds: Dataset, header_bytes: int, seed: int, max_train: int) -> dict[str, Any]:
    feats = _header_features(ds, header_bytes)
    if feats is None:
        return {"skipped": "layers=l7: X holds no header bytes, nothing to probe"}
    tr = ds.split == 0
    te = ds.split == 2 if np.any(ds.split == 2) else ds.split == 1
    if not tr.any() or not te.any():
        return {"skipped": "needs samples in train and in test (or val)"}
    varying = np.flatnonzero(feats[tr].std(0) > 0)
    out: dict[str, Any] = {"header_bytes": header_bytes, "features": int(feats.shape[1]),
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
        "scored_on": "test" if np.any(ds.split == 2) else "val",
        "macro_f1": round(float(f1_score(yt, pred, average="macro")), 4),
        "accuracy": round(float(accuracy_score(yt, pred)), 4),
        "majority_accuracy": round(float(np.mean(yt == maj)), 4),
        "majority_macro_f1": round(float(f1_score(yt, np.full_like(yt, maj), average="macro")), 4),
        "chance_macro_f1": round(1.0 / max(1, len(np.unique(yt))), 4),
    })
    return out

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
        lines.append(f"shortcut probe ({p['model']}, first {p['header_bytes']} bytes/packet, "
                     f"{len(p['varying_positions'])} positions vary): macro-F1 {p['macro_f1']:.3f}, "
                     f"accuracy {p['accuracy']:.3f} on {p['scored_on']} "
                     f"(majority class: accuracy {p['majority_accuracy']:.3f}, macro-F1 "
                     f"{p['majority_macro_f1']:.3f})")
        if p["varying_positions"]:
            lines.append(f"  header byte positions still varying after masking: {_ranges(p['varying_positions'])}")
    else:
        lines.append(f"shortcut probe skipped: {p.get('skipped')}")
    return "\n".join(lines)

def _ranges(pos: list[int]) -> str:
    out, start, prev = [], None, None
    for p in pos:
        if start is None:
            start = prev = p
        elif p == prev + 1:
            prev = p
        else:
            out.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = p
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return ", ".join(out)

