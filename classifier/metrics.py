"""Classification metrics with NumPy only (no scikit-learn/TensorFlow at evaluation time)."""
from __future__ import annotations

import numpy as np


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def report(y_true, y_pred, labels: list[str]) -> dict:
    """Accuracy, macro-F1, weighted-F1 and per-class precision/recall/F1/support."""
    y_true = np.asarray(y_true, int)
    y_pred = np.asarray(y_pred, int)
    k = len(labels)
    cm = confusion(y_true, y_pred, k)
    tp = np.diag(cm).astype(float)
    pred_n = cm.sum(0).astype(float)
    true_n = cm.sum(1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(pred_n > 0, tp / pred_n, 0.0)
        rec = np.where(true_n > 0, tp / true_n, 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    present = true_n > 0
    per_class = {
        labels[i]: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                    "support": int(true_n[i])}
        for i in range(k)
    }
    n = len(y_true)
    return {
        "n": int(n),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        # macro over the classes present in y_true (a class absent from the test set is not scored)
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * true_n).sum() / n) if n else 0.0,
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


def macro_f1(y_true, y_pred, n_classes: int) -> float:
    """Macro-F1 over the classes present in ``y_true`` (as ``report``)."""
    return report(y_true, y_pred, [str(i) for i in range(n_classes)])["macro_f1"]


def by_session(probs: np.ndarray, y: np.ndarray, session: np.ndarray):
    """Average the probabilities of all rows of a session: (probs, y, session ids), one row each.

    Rows of one session share a label; the session's label is its first row's.
    """
    session = np.asarray(session)
    uniq, first, inv = np.unique(session, return_index=True, return_inverse=True)
    if len(uniq) == len(session):
        return probs, np.asarray(y), session
    sums = np.zeros((len(uniq), probs.shape[1]), dtype=np.float64)
    np.add.at(sums, inv, probs)
    counts = np.bincount(inv, minlength=len(uniq)).astype(np.float64)
    return (sums / counts[:, None]).astype(np.float32), np.asarray(y)[first], uniq


def first_of_session(probs: np.ndarray, y: np.ndarray, session: np.ndarray):
    """The first row of every session (rows are in arrival order): what the gateway classifies
    for per-packet representations (it decides on a session's first usable packet)."""
    uniq, first = np.unique(np.asarray(session), return_index=True)
    return probs[first], np.asarray(y)[first], uniq


def per_session(probs, y, session, per_packet: bool):
    """Session-level (probs, y, ids) as the gateway decides: first row for per-packet
    representations, the single row otherwise."""
    return first_of_session(probs, y, session) if per_packet else by_session(probs, y, session)


def calibrate_threshold(probs: np.ndarray, rate: float = 0.02) -> float:
    """Confidence threshold under which a fraction ``rate`` of in-distribution
    (validation) samples fall: the ``rate`` quantile of their top probability."""
    if len(probs) == 0 or rate <= 0:
        return 0.0
    conf = probs.max(axis=1)
    return float(np.quantile(conf, rate))


def auroc(in_scores, out_scores) -> float | None:
    """Area under the ROC curve of telling ``out_scores`` (positives, higher = more
    unfamiliar) from ``in_scores``: the probability that a random unfamiliar sample
    scores above a random familiar one (ties count half). None if either is empty."""
    a = np.asarray(in_scores, dtype=np.float64).ravel()
    o = np.asarray(out_scores, dtype=np.float64).ravel()
    if len(a) == 0 or len(o) == 0:
        return None
    allv = np.concatenate([a, o])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sv = allv[order]
    # average ranks over ties
    _, first, counts = np.unique(sv, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    r_out = ranks[len(a):].sum()
    return float((r_out - len(o) * (len(o) + 1) / 2) / (len(a) * len(o)))


def open_set(probs: np.ndarray, threshold: float) -> dict:
    conf = probs.max(axis=1) if len(probs) else np.zeros(0)
    unknown = int((conf < threshold).sum())
    return {"threshold": float(threshold), "unknown": unknown, "n": int(len(conf)),
            "unknown_rate": float(unknown / len(conf)) if len(conf) else 0.0}


def format_report(rep: dict, title: str = "") -> str:
    lines = []
    if title:
        lines.append(title)
    lines.append(f"  samples {rep['n']}  accuracy {rep['accuracy']:.4f}  macro-F1 {rep['macro_f1']:.4f}"
                 f"  weighted-F1 {rep['weighted_f1']:.4f}")
    w = max([len(c) for c in rep["per_class"]] + [5])
    lines.append(f"  {'class':<{w}}  precision  recall     f1  support")
    for c, m in rep["per_class"].items():
        lines.append(f"  {c:<{w}}  {m['precision']:9.4f}  {m['recall']:6.4f}  {m['f1']:6.4f}  {m['support']:7d}")
    return "\n".join(lines)
