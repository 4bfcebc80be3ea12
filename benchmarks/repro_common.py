"""Shared plumbing of the paper reproductions (``benchmarks/repro_*.py``).

Only plumbing: argument parsing, hardware and wall-time records, dataset builds
through the library (``classifier.build.build_from_captures`` /
``build_from_idx``, the code behind ``egw dataset build``), the audit
(``classifier.audit.audit_dataset``), the *paper protocol* re-split (a random
per-row split made with ``classifier.splits.assign_splits`` by treating every
row as its own unit), small metric summaries over ``classifier.metrics.report``,
JSON and matplotlib (Agg) output. Models, representations, splits and metrics
all come from ``classifier``.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ---------------------------------------------------------------- arguments / sizes
def parser(name: str, doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"repro_{name}.py", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="size", action="store_const", const="quick",
                   help="minutes on 2 CPU cores (default)")
    g.add_argument("--full", dest="size", action="store_const", const="full",
                   help="the full-size run (see docs/reproduction.md for its expected time)")
    p.set_defaults(size="quick")
    p.add_argument("--data", default=str(REPO / ".." / "shared" / "data"),
                   help="the shared data folder (iscx-apps/, iscx-session784/, taxonomy)")
    p.add_argument("--out", default=None, help=f"output folder (default runs/repro/{name})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="override the size's epochs")
    p.add_argument("--max-per-class", type=int, help="override the size's sessions per class cap")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for dataset builds")
    return p


def out_dir(args, name: str) -> Path:
    d = Path(args.out) if args.out else REPO / "runs" / "repro" / name
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---------------------------------------------------------------- hardware / timing
def hardware() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        from classifier.nn.common import tf   # the quiet import (no start-up INFO lines)
        tfv = tf.__version__
        gpus = len(tf.config.list_physical_devices("GPU"))
    except Exception:
        tfv, gpus = None, 0
    return {"cpu": cpu, "cores_visible": os.cpu_count(),
            "cores_allowed": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "memory_gib": mem, "gpus": gpus, "python": platform.python_version(),
            "tensorflow": tfv, "platform": platform.platform(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "nice": os.nice(0)}


class Clock:
    """Wall time per named stage plus the total."""

    def __init__(self):
        self.t0 = time.time()
        self.stages: dict[str, float] = {}

    def stage(self, name: str):
        clock = self

        class _S:
            def __enter__(self):
                self.t = time.time()

            def __exit__(self, *exc):
                clock.stages[name] = round(clock.stages.get(name, 0) + time.time() - self.t, 1)
        return _S()

    def total(self) -> float:
        return round(time.time() - self.t0, 1)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ---------------------------------------------------------------- datasets (library builds)
def capture_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def write_taxonomy(mapping: dict[str, str], path: Path) -> Path:
    """A taxonomy YAML (``class: [directory, ...]``) for ``build_from_captures``."""
    import yaml
    inv: dict[str, list[str]] = {}
    for d, c in sorted(mapping.items()):
        inv.setdefault(c, []).append(d)
    path.write_text(yaml.safe_dump(inv, sort_keys=True))
    return path


def build(input_dir: Path, out_npz: Path, pre, mapping: dict[str, str] | None, max_per_class=None,
          seed: int = 0, jobs: int = 1):
    """``egw dataset build`` through the library; returns the loaded Dataset. The split is by
    session (``min_files`` off, like the default model's ``--min-files 1000000``): an iscx-apps
    folder is one capture, so a per-file split would hold out whole applications."""
    from classifier.build import build_from_captures
    from classifier.dataset import load_dataset
    tax = write_taxonomy(mapping, out_npz.with_suffix(".taxonomy.yaml")) if mapping else None
    build_from_captures(input_dir, out_npz, pre, taxonomy=tax, max_per_class=max_per_class,
                        seed=seed, jobs=jobs, progress=False, min_files=10**6,
                        argv=["benchmarks", out_npz.name])
    return load_dataset(out_npz)


def build_idx(folder: Path, out_npz: Path, max_per_class=None, seed: int = 0):
    from classifier.build import build_from_idx
    from classifier.dataset import load_dataset
    build_from_idx(folder, out_npz, max_per_class=max_per_class, seed=seed,
                   argv=["benchmarks", out_npz.name])
    return load_dataset(out_npz)


def class_sessions(ds) -> dict[str, int]:
    """Usable sessions per class in the dataset (after the per-class cap)."""
    return {lab: int(len(np.unique(ds.session[ds.y == i]))) for i, lab in enumerate(ds.labels)}


def available_sessions(ds) -> dict[str, int]:
    """Usable sessions per class before the build's per-class cap (from the manifest)."""
    capped = ds.manifest.get("capped_classes") or {}
    return {c: int(capped.get(c, n)) for c, n in class_sessions(ds).items()}


def subset_classes(ds, keep: list[str]):
    """The dataset restricted to the classes in ``keep`` (re-indexed, same splits)."""
    from classifier.dataset import Dataset
    idx = [ds.labels.index(c) for c in keep]
    m = np.isin(ds.y, idx)
    remap = np.full(len(ds.labels), -1)
    remap[idx] = np.arange(len(idx))
    return Dataset(X=ds.X[m], y=remap[ds.y[m]], session=ds.session[m], split=ds.split[m],
                   labels=list(keep), preprocess=ds.preprocess, manifest=ds.manifest, path=ds.path)


def paper_resplit(ds, seed: int = 0, fractions=(0.8, 0.1, 0.1)):
    """The papers' protocol: rows (packets) split at random, stratified by class, with no
    regard for sessions or identical vectors (``assign_splits`` with one unit per row).
    The session ids are kept, so the audit shows how many sessions straddle the splits."""
    from classifier.dataset import Dataset
    from classifier.splits import assign_splits
    n = len(ds.y)
    rows = np.arange(n, dtype=np.int64)
    split, info = assign_splits(np.zeros((n, 1), np.float32), ds.y, rows, fractions, seed,
                                hashes=[int(i).to_bytes(8, "little") for i in rows])
    return Dataset(X=ds.X, y=ds.y, session=ds.session, split=split, labels=ds.labels,
                   preprocess=ds.preprocess, manifest=ds.manifest, path=ds.path), info


def audit(ds, probe: bool = True, max_train: int = 5000) -> dict[str, Any]:
    """The audit's leakage figures (duplicates across splits, shortcut probe)."""
    from classifier.audit import audit_dataset
    rep = audit_dataset(ds, probe=probe, max_train=max_train)
    p = rep["probe"]
    return {"samples": rep["samples"],
            "sessions_in_several_splits": rep["sessions_in_several_splits"],
            "duplicates_across_splits": rep["duplicates_across_splits"],
            "duplicates_within_train": rep["duplicates_within_train"],
            "vectors_with_several_labels": rep["vectors_with_several_labels"],
            "probe": {k: p[k] for k in ("macro_f1", "accuracy", "majority_accuracy", "skipped",
                                         "header", "scored_on") if k in p}}


def split_counts(ds) -> dict[str, dict[str, int]]:
    out = {}
    for s, name in ((0, "train"), (1, "val"), (2, "test")):
        m = ds.split == s
        out[name] = {"rows": int(m.sum()), "sessions": int(len(np.unique(ds.session[m])))}
    return out


# ---------------------------------------------------------------- metrics (over classifier.metrics)
def summarize(y_true, y_pred, labels) -> dict[str, Any]:
    """``classifier.metrics.report`` plus macro precision/recall (means of its per-class figures)."""
    from classifier.metrics import report
    r = report(y_true, y_pred, labels)
    present = [c for c in labels if r["per_class"][c]["support"] > 0]
    r["macro_precision"] = float(np.mean([r["per_class"][c]["precision"] for c in present])) if present else 0.0
    r["macro_recall"] = float(np.mean([r["per_class"][c]["recall"] for c in present])) if present else 0.0
    return r


def score(probs, y, session, labels) -> dict[str, Any]:
    """Per row and per session (mean of row probabilities, ``classifier.metrics.by_session``)."""
    from classifier.metrics import by_session
    out = {"per_row": summarize(y, probs.argmax(1), labels)}
    ps, ys, _ = by_session(probs, y, session)
    out["per_session"] = summarize(ys, ps.argmax(1), labels)
    return out


def short(r: dict) -> dict:
    """A report without confusion and per-class detail (for compact tables)."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()
            if k not in ("confusion", "per_class")}


# ---------------------------------------------------------------- keras fitting
def fit(model, Xtr, ytr, Xva, yva, epochs: int, batch_size: int, n_classes: int, patience: int = 4):
    """The project's training loop (``classifier.nn.loop``, no tf.data) with class weights,
    early stopping and LR reduction on val loss."""
    from classifier.nn import loop
    from classifier.nn.common import keras
    from classifier.train import class_weights
    cbs = []
    if len(yva):
        cbs = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                             restore_best_weights=True),
               keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                 patience=max(1, patience // 2), min_lr=1e-5)]
    cw = class_weights(ytr, n_classes)
    batches = loop.Batches(Xtr, ytr, np.array([cw[int(c)] for c in ytr], np.float32), batch_size)
    return loop.fit(model, batches, epochs, validation=(Xva, yva) if len(yva) else None,
                    callbacks=cbs)


# ---------------------------------------------------------------- output
def write_json(path: Path, obj: Any) -> None:
    from classifier.export import write_json as _write  # one JSON writer (numpy-aware, atomic)

    _write(path, obj)


def plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    return pyplot


def save_plot(fig, out: Path, name: str) -> str:
    """Lay out, write ``out/name`` (PNG), close the figure; returns ``name``."""
    fig.tight_layout()
    fig.savefig(out / name, dpi=100)
    plt().close(fig)
    return name


def finish(out: Path, name: str, args, clock: Clock, hw: dict, results: dict, plots: list[str]):
    results.update({"experiment": name, "size": args.size, "seed": args.seed,
                    "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
                    "hardware": hw, "wall_seconds": clock.total(), "stage_seconds": clock.stages,
                    "plots": plots, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    write_json(out / "results.json", results)
    log(f"{name}: wrote {out / 'results.json'} and {len(plots)} plots in {results['wall_seconds']} s")
    return results
