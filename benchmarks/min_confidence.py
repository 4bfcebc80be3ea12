"""Derive the shipped policies' ``min_confidence`` values from VALIDATION sessions.

For each class the default bundle (int8, as the gateway runs it) predicts on the
dataset's validation split, ``min_confidence`` is the lowest confidence on a 0.05 grid
at which the predictions kept (label = class, confidence >= it) are right at least
``--precision`` of the time (default 0.9). Below it, the policy's ``default`` entry
applies. Writes ``docs/results/min_confidence.json`` (rendered into docs/models.md);
``tests/unit/test_policy_min_confidence.py`` checks that the shipped policies use these
values for the classes that get priority.

    .venv/bin/python benchmarks/min_confidence.py [--model DIR] [--data runs/data/iscx6-kpackets-sess.npz]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GRID = [round(x, 2) for x in np.arange(0.0, 1.0, 0.05)]


def derive(probs: np.ndarray, y: np.ndarray, labels: list[str], target: float) -> dict:
    conf = probs.max(1)
    pred = probs.argmax(1)
    out = {}
    for c, name in enumerate(labels):
        is_c = pred == c
        chosen = None
        for t in GRID:
            keep = is_c & (conf >= t)
            if keep.sum() and (y[keep] == c).mean() >= target:
                chosen = t
                break
        t = chosen if chosen is not None else 0.95
        keep = is_c & (conf >= t)
        out[name] = {"min_confidence": t, "reached": chosen is not None,
                     "precision": float((y[keep] == c).mean()) if keep.sum() else None,
                     "precision_without": float((y[is_c] == c).mean()) if is_c.sum() else None,
                     "kept": int(keep.sum()), "n_predicted": int(is_c.sum())}
    return out


def main() -> int:
    from classifier.bundle import DEFAULT_BUNDLE_DIR, load_bundle
    from classifier.dataset import load_dataset
    from classifier.export import write_json
    from classifier.metrics import per_session

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(DEFAULT_BUNDLE_DIR))
    p.add_argument("--data", default="runs/data/iscx6-kpackets-sess.npz")
    p.add_argument("--precision", type=float, default=0.9)
    p.add_argument("--out", default=str(REPO / "docs" / "results" / "min_confidence.json"))
    a = p.parse_args()
    b = load_bundle(a.model)
    ds = load_dataset(a.data)
    va = ds.split == 1
    probs, y, _ = per_session(b.predict(ds.X[va]), ds.y[va], ds.session[va], b.preprocess.per_packet)
    res = {"model": str(Path(a.model).resolve().relative_to(REPO)) if Path(a.model).resolve().is_relative_to(REPO)
           else a.model,
           "model_family": b.card.get("model"), "data": a.data, "split": "val",
           "sessions": int(len(y)), "target_precision": a.precision,
           "rule": (f"the lowest confidence (0.05 grid) at which the int8 model's validation "
                    f"predictions of the class are right at least {a.precision:.0%} of the time; "
                    f"0.95 when no threshold reaches it"),
           "classes": derive(probs, y, b.labels, a.precision)}
    write_json(Path(a.out), res)
    for c, r in res["classes"].items():
        print(f"{c:<14} min_confidence {r['min_confidence']:.2f}  precision {r['precision']}  "
              f"kept {r['kept']}/{r['n_predicted']}")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
