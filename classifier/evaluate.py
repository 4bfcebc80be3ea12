"""`egw evaluate`: score a bundle through LiteRT exactly as the gateway runs it.

No TensorFlow: the bundle runs through :mod:`classifier.bundle` (LiteRT) and the
inputs come from the same :class:`~classifier.preprocess.Preprocess` code the
gateway calls. Input is either a dataset ``.npz`` (its test split when it has
one, else every row) or a directory of captures (one subdirectory per class,
optionally merged by a taxonomy), classified per session.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from classifier.bundle import UNKNOWN, Bundle, load_bundle
from classifier.metrics import auroc, by_session, format_report, per_session, report


class EvaluateError(Exception):
    user_facing = True


def _dataset_for(bundle: Bundle, data: str, taxonomy: str | None, progress: bool, split: str):
    """(X, y names, session, source description) for a .npz or a capture directory."""
    from classifier.dataset import load_dataset

    p = Path(data)
    if p.is_dir():
        from classifier.build import build_from_captures

        with tempfile.TemporaryDirectory(prefix="egw-eval-") as tmp:
            out = Path(tmp) / "eval.npz"
            build_from_captures(p, out, bundle.preprocess, taxonomy=taxonomy, progress=progress,
                                argv=["egw", "evaluate"])
            ds = load_dataset(out)
        rows = np.arange(len(ds.y))
        what = f"{data} (captures, all {len(np.unique(ds.session))} sessions)"
    else:
        ds = load_dataset(p)
        if ds.preprocess.to_dict() != bundle.preprocess.to_dict():
            diff = sorted(k for k, v in ds.preprocess.to_dict().items()
                          if bundle.preprocess.to_dict().get(k) != v)
            raise EvaluateError(f"{data}: built with other preprocessing than the bundle "
                                f"{bundle.path} (differs in {', '.join(diff)}); rebuild it with the "
                                f"bundle's preprocess.json or evaluate the capture directory")
        want = {"train": 0, "val": 1, "test": 2}.get(split)
        if split == "all":
            rows = np.arange(len(ds.y))
        elif (ds.split == want).any():
            rows = np.where(ds.split == want)[0]
        elif split == "test":
            rows = np.arange(len(ds.y))
        else:
            raise EvaluateError(f"{data}: has no {split} rows")
        what = f"{data} ({split if (ds.split == want).any() else 'all'} rows)"
    names = [ds.labels[i] for i in ds.y[rows]]
    return ds.X[rows], np.array(names, dtype=object), ds.session[rows], what


def evaluate(model_dir: str, data: str, taxonomy: str | None = None, prefer_int8: bool = True,
             progress: bool = True, split: str = "test") -> dict:
    bundle = load_bundle(model_dir, prefer_int8=prefer_int8)
    from classifier.evaluate_devices import device_options, evaluate_devices
    if device_options(bundle) is not None and Path(data).is_dir():
        return evaluate_devices(bundle, data, progress)
    X, names, session, what = _dataset_for(bundle, data, taxonomy, progress, split)
    t0 = time.perf_counter()
    probs = bundle.predict(X) if len(X) else np.zeros((0, len(bundle.labels)), np.float32)
    secs = time.perf_counter() - t0
    index = {c: i for i, c in enumerate(bundle.labels)}
    known = np.array([n in index for n in names], dtype=bool)
    y = np.array([index.get(n, -1) for n in names], dtype=np.int64)
    # per session as the gateway decides: per-packet models on the session's first usable packet
    ps, ys, ss = per_session(probs, y, session, bundle.preprocess.per_packet)
    known_s = ys >= 0
    # the open-set score per session, rows picked as for the probabilities; without an OOD
    # part, 1 - max probability (what the max-probability threshold compares)
    rows_ood = bundle.ood_score(X) if len(X) else None
    ood_s = (per_session(rows_ood[:, None], y, session, bundle.preprocess.per_packet)[0][:, 0]
             if rows_ood is not None else None)
    unfamiliar = ood_s if ood_s is not None else 1.0 - ps.max(axis=1)
    decided = bundle.decide(ps, ood_s)
    labels = np.array([lab for lab, _ in decided], dtype=object)
    how = ({"score": "ood", "method": bundle.card["ood"].get("name"),
            "threshold": bundle.ood.threshold} if ood_s is not None else
           {"score": "max-probability", "threshold": bundle.threshold})
    res: dict = {
        "bundle": str(bundle.path),
        "model_file": bundle.model_file.name,
        "data": what,
        "rows": int(len(X)),
        "sessions": int(len(ss)),
        "sessions_in_distribution": int(known_s.sum()),
        "sessions_out_of_distribution": int((~known_s).sum()),
        "seconds_inference": round(secs, 3),
        "ms_per_row": round(1000 * secs / max(1, len(X)), 4),
    }
    if known_s.any():
        res["closed_set"] = report(ys[known_s], ps[known_s].argmax(1), bundle.labels)
        res["open_set"] = {**how, **_unknown_share(labels[known_s])}
        # open-set metrics: an in-distribution session scored 'unknown' counts as wrong
        pred_open = np.array([index.get(lab, -1) for lab in labels])[known_s]
        res["open_set"]["accuracy_with_unknown"] = float((pred_open == ys[known_s]).mean())
    if (~known_s).any():
        out = labels[~known_s]
        res["out_of_distribution"] = {
            "classes": sorted(set(names[~known])),
            **how, **_unknown_share(out),
            "predicted": {lab: int((out == lab).sum()) for lab in sorted(set(out.tolist()))},
            "auroc": auroc(unfamiliar[known_s], unfamiliar[~known_s]) if known_s.any() else None,
        }
    if bundle.preprocess.per_packet and len(X) != len(ss) and known.any():
        res["per_row"] = report(y[known], probs[known].argmax(1), bundle.labels)
        pv, yv, _ = by_session(probs[known], y[known], session[known])
        res["session_vote"] = report(yv, pv.argmax(1), bundle.labels)
    return res


def _unknown_share(labels: np.ndarray) -> dict:
    unknown = int((labels == UNKNOWN).sum())
    return {"unknown": unknown, "n": int(len(labels)),
            "unknown_rate": float(unknown / len(labels)) if len(labels) else 0.0}


def format_result(res: dict) -> str:
    if "per_capture" in res:
        from classifier.evaluate_devices import format_devices
        return format_devices(res)
    lines = [f"bundle {res['bundle']} ({res['model_file']}), data {res['data']}",
             f"scored {res['sessions']} sessions ({res['rows']} rows): "
             f"{res['sessions_in_distribution']} of known classes, "
             f"{res['sessions_out_of_distribution']} of other classes; "
             f"{res['ms_per_row']} ms per row"]
    if "closed_set" in res:
        lines.append(format_report(res["closed_set"], "per session (argmax"
                                   + (", first usable packet as the gateway decides" if "per_row" in res else "")
                                   + "):"))
        o = res["open_set"]
        lines.append(f"open set ({o['score']} score, threshold {o['threshold']:.4f}): "
                     f"{o['unknown']} of {o['n']} "
                     f"in-distribution sessions fall to '{UNKNOWN}' ({100 * o['unknown_rate']:.1f} %); "
                     f"accuracy counting those as wrong {o['accuracy_with_unknown']:.4f}")
    if "out_of_distribution" in res:
        o = res["out_of_distribution"]
        lines.append(f"other classes ({', '.join(o['classes'])}): {o['unknown']} of {o['n']} "
                     f"sessions -> '{UNKNOWN}' ({100 * o['unknown_rate']:.1f} %); predicted: "
                     + ", ".join(f"{k} {v}" for k, v in o["predicted"].items()))
        if o.get("auroc") is not None:
            lines.append(f"AUROC ({o['score']} score, in-distribution vs other classes' "
                         f"sessions): {o['auroc']:.4f}")
    if res.get("per_row"):
        r = res["per_row"]
        lines.append(f"per row (packet): accuracy {r['accuracy']:.4f}, macro-F1 {r['macro_f1']:.4f}")
        v = res["session_vote"]
        lines.append(f"per session, mean over all its packets (not what the gateway does): "
                     f"accuracy {v['accuracy']:.4f}, macro-F1 {v['macro_f1']:.4f}")
    return "\n".join(lines)


def confusion_report(res: dict) -> dict | None:
    """The report whose confusion matrix ``--confusion`` draws: per capture (device
    bundles) or per session (closed set)."""
    return res.get("per_capture_report") or res.get("closed_set")


def write_json(res: dict, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(res, indent=2) + "\n")
