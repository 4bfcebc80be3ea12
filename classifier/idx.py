"""MNIST-style idx files (the ISCX 784-byte session vectors of Wang et al. 2017).

A folder such as ``iscx-session784/12class/SessionL7`` holds
``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz`` (gzip or plain).
Class names come from a ``LABELS.txt`` beside or above the folder (section
headed by the folder's relative path), else the indices are used.
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

from classifier.dataerrors import DatasetError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (gzip or not) into an array of its declared shape."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read idx file: {exc}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DatasetError(f"{path}: not an idx file (bad magic)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: truncated idx header")
    shape = struct.unpack_from(">" + "I" * ndim, data, 4)
    dt = np.dtype(_DTYPES[data[2]])
    need = int(np.prod(shape)) * dt.itemsize
    body = data[4 + 4 * ndim:]
    if len(body) < need:
        raise DatasetError(f"{path}: truncated idx data ({len(body)} of {need} bytes)")
    return np.frombuffer(body, dtype=dt, count=int(np.prod(shape))).reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def is_idx_folder(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return folder.is_dir() and _find(folder, "train-images-idx3-ubyte") is not None


def label_names(folder: Path, n_classes: int) -> list[str]:
    """Class names from LABELS.txt (section ``<rel path>:`` then ``<index> <name>`` lines)."""
    folder = folder.resolve()
    for parent in [folder, *folder.parents][:4]:
        f = parent / "LABELS.txt"
        if not f.is_file():
            continue
        rel = folder.relative_to(parent).as_posix()
        names: dict[int, str] = {}
        active = False
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            s = line.strip()
            if s.endswith(":"):
                active = s.split(" ")[0].rstrip(":") == rel
                continue
            if active:
                parts = s.split(None, 1)
                if len(parts) == 2 and parts[0].isdigit():
                    names[int(parts[0])] = parts[1].strip()
        if len(names) >= n_classes:
            return [names[i] for i in range(n_classes)]
    return [str(i) for i in range(n_classes)]


def load_idx_folder(folder: str | os.PathLike):
    """Return ``(train_X, train_y, test_X, test_y, labels, files)`` with X as uint8 (n, 784)."""
    folder = Path(folder)
    parts = {}
    files = []
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        f = _find(folder, stem)
        if f is None:
            raise DatasetError(f"{folder}: idx folder lacks {stem}(.gz)")
        parts[stem] = read_idx(f)
        files.append(str(f))
    trX, trY = parts["train-images-idx3-ubyte"], parts["train-labels-idx1-ubyte"]
    teX, teY = parts["t10k-images-idx3-ubyte"], parts["t10k-labels-idx1-ubyte"]
    for X, Y, name in ((trX, trY, "train"), (teX, teY, "t10k")):
        if len(X) != len(Y):
            raise DatasetError(f"{folder}: {name} images ({len(X)}) and labels ({len(Y)}) differ in count")
    trX = trX.reshape(len(trX), -1)
    teX = teX.reshape(len(teX), -1)
    n_classes = int(max(trY.max(initial=0), teY.max(initial=0))) + 1
    return trX, trY.astype(np.int64), teX, teY.astype(np.int64), label_names(folder, n_classes), files
