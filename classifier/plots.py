"""PNG plots of a training run (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(cm, labels, path, title="Confusion matrix (test sessions)"):
    plt = _plt()
    cm = np.asarray(cm, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def per_class_png(rep: dict, path, title="Per-class precision / recall / F1 (test)"):
    plt = _plt()
    labels = list(rep["per_class"])
    vals = np.array([[rep["per_class"][c][m] for m in ("precision", "recall", "f1")] for c in labels])
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(labels) + 2), 3.6))
    for i, m in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (i - 1) * 0.27, vals[:, i], 0.27, label=m)
    ax.set_xticks(x, labels, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title + f"  macro-F1 {rep['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def loss_png(history: dict, path, keys=None, title="Training losses"):
    """One curve per key of ``history`` (lists per epoch)."""
    plt = _plt()
    keys = keys or [k for k, v in history.items() if "loss" in k and len(v)]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k in keys:
        v = history.get(k) or []
        if len(v):
            ax.plot(np.arange(1, len(v) + 1), v, label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(out_dir, labels, test_report: dict | None, history: dict, loss_keys=None,
              loss_title="Training losses") -> list[str]:
    out = Path(out_dir)
    written = []
    if test_report is not None:
        confusion_png(test_report["confusion"], labels, out / "confusion.png")
        per_class_png(test_report, out / "per_class.png")
        written += ["confusion.png", "per_class.png"]
    if history:
        loss_png(history, out / "loss.png", loss_keys, loss_title)
        written.append("loss.png")
    return written
