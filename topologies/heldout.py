"""Which captured sessions a model never trained on, so the emulation replays only those.

A dataset ``.npz`` numbers its sessions in build order (files in manifest
order, then each file's sessions that produced a vector). Walking the captures
the same way recovers, for every session of the test split, its capture file
and its index among that file's sessions. ``write_heldout`` stores that list
in a model bundle as ``heldout_sessions.json``; the emulation replays from it::

    python -m topologies.heldout runs/iscx6-kpackets.npz classifier/models/default
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

HELDOUT_FILE = "heldout_sessions.json"


def test_sessions(dataset_path: str | Path) -> dict:
    """``{"root": ..., "sessions": [[relpath, index], ...]}`` of the dataset's test split."""
    import numpy as np

    from classifier.build import session_vectors
    from classifier.dataset import load_dataset
    from classifier.splits import TEST

    ds = load_dataset(dataset_path)
    man = ds.manifest
    if man.get("input_kind") != "captures":
        raise ValueError(f"{dataset_path}: not built from captures")
    if (man.get("options") or {}).get("max_per_class"):
        raise ValueError(f"{dataset_path}: built with --max-per-class; session ids cannot be "
                         "mapped back to captures")
    split_of = {}
    for sid, sp in zip(ds.session.tolist(), ds.split.tolist()):
        split_of.setdefault(sid, sp)
    root = Path(man["input"])
    pre = ds.preprocess
    sid = 0
    out = []
    for entry in man["files"]:
        path = root / entry["path"]
        n_used = 0
        for k, _s, _x in session_vectors(path, pre):   # the build's own numbering
            if split_of.get(sid) == TEST:
                out.append([entry["path"], k])
            sid += 1
            n_used += 1
        if n_used != entry["sessions_used"]:
            raise ValueError(f"{path}: {n_used} sessions now, {entry['sessions_used']} when "
                             "the dataset was built (captures or code changed)")
    if sid != len(np.unique(ds.session)):
        raise ValueError(f"{dataset_path}: session count mismatch ({sid} vs dataset)")
    return {"dataset": Path(dataset_path).name, "root_name": root.name, "sessions": out}


def write_heldout(dataset_path: str | Path, bundle_dir: str | Path) -> Path:
    doc = test_sessions(dataset_path)
    path = Path(bundle_dir) / HELDOUT_FILE
    path.write_text(json.dumps(doc, separators=(",", ":")))
    return path


def heldout_filter(bundle, apps_dir: Path) -> tuple[Callable | None, str]:
    """A ``keep`` predicate for :func:`topologies.replay.load_sessions`."""
    path = Path(bundle.path) / HELDOUT_FILE if getattr(bundle, "path", None) else None
    if path is None or not path.exists():
        return None, ("the bundle lists no held-out sessions: replayed sessions may include "
                      "training data")
    doc = json.loads(path.read_text())
    held = {(p, int(k)) for p, k in doc["sessions"]}

    def keep(cs) -> bool:
        rel = str(Path(cs.source).resolve().relative_to(apps_dir.resolve()))
        return (rel, cs.index) in held

    return keep, f"test split of {doc['dataset']}: {len(held)} held-out sessions"


def load_taxonomy_map(data_dir: Path) -> dict[str, list[str]] | None:
    import yaml

    path = data_dir / "taxonomy-iscx-traffic-types.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else None


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: python -m topologies.heldout DATASET.npz BUNDLE_DIR", file=sys.stderr)
        sys.exit(2)
    print(write_heldout(sys.argv[1], sys.argv[2]))
