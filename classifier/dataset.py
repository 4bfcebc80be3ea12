"""The dataset file written by ``egw dataset build`` and read by training code.

``.npz`` arrays: ``X`` float32 (samples x representation shape), ``y`` int64
class index, ``session`` int64 session id (unique in the file; all packet
samples of a session share it), ``split`` int8 (0 train, 1 val, 2 test;
session-disjoint), and 0-d unicode JSON strings ``labels`` (class names in
index order), ``preprocess`` (the :class:`Preprocess` that made ``X``) and
``manifest`` (source files, options, version, counts).
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifier.dataerrors import DatasetError, PreprocessError
from classifier.preprocess import Preprocess

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}
REQUIRED = ("X", "y", "session", "split", "labels", "preprocess", "manifest")


@dataclass
class Dataset:
    X: np.ndarray
    y: np.ndarray
    session: np.ndarray
    split: np.ndarray
    labels: list[str]
    preprocess: Preprocess
    manifest: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def part(self, which: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.split == which
        return self.X[m], self.y[m]

    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.part(TRAIN)

    def val(self) -> tuple[np.ndarray, np.ndarray]:
        return self.part(VAL)

    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.part(TEST)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{class: {"train": n, "val": n, "test": n, "sessions": n}}`` (samples; sessions in total)."""
        out: dict[str, dict[str, int]] = {}
        for i, name in enumerate(self.labels):
            m = self.y == i
            c = {SPLIT_NAMES[s]: int(np.sum(m & (self.split == s))) for s in SPLIT_NAMES}
            c["sessions"] = int(len(np.unique(self.session[m])))
            out[name] = c
        return out


def save_dataset(path: str | os.PathLike, X, y, session, split, labels, preprocess: Preprocess,
                 manifest: dict) -> None:
    """Write the ``.npz`` atomically: a temporary file in the same folder, renamed at the end."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, X=np.asarray(X, dtype=np.float32), y=np.asarray(y, dtype=np.int64),
                     session=np.asarray(session, dtype=np.int64),
                     split=np.asarray(split, dtype=np.int8),
                     labels=np.array(json.dumps(list(labels))),
                     preprocess=np.array(json.dumps(preprocess.to_dict(), sort_keys=True)),
                     manifest=np.array(json.dumps(manifest, sort_keys=True, default=str)))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Read a dataset ``.npz``; a missing, unreadable or malformed file raises
    :class:`DatasetError` (``user_facing``) naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in REQUIRED if k not in z.files]
            if missing:
                raise DatasetError(f"{path}: not an egw dataset (missing {', '.join(missing)})")
            arrays = {k: z[k] for k in REQUIRED}
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such dataset file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz dataset ({exc})") from None
    X, y, sess, split = arrays["X"], arrays["y"], arrays["session"], arrays["split"]
    n = len(X)
    if not (len(y) == len(sess) == len(split) == n):
        raise DatasetError(f"{path}: X, y, session and split differ in length")
    try:
        labels = json.loads(str(arrays["labels"]))
        manifest = json.loads(str(arrays["manifest"]))
        pre = Preprocess.from_dict(json.loads(str(arrays["preprocess"])))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: bad JSON in labels/preprocess/manifest: {exc}") from None
    except PreprocessError as exc:
        raise DatasetError(f"{path}: bad preprocess: {exc}") from None
    if not isinstance(labels, list) or (n and (y.min() < 0 or y.max() >= len(labels))):
        raise DatasetError(f"{path}: labels do not cover the class indices in y")
    if n and not np.isin(split, (TRAIN, VAL, TEST)).all():
        raise DatasetError(f"{path}: split holds values other than 0, 1, 2")
    return Dataset(X=X.astype(np.float32, copy=False), y=y.astype(np.int64, copy=False),
                   session=sess.astype(np.int64, copy=False), split=split.astype(np.int8, copy=False),
                   labels=[str(x) for x in labels], preprocess=pre, manifest=manifest, path=str(path))
