"""``egw dataset build``: captures (or an idx folder) → dataset ``.npz``.

Input: a directory with one subdirectory per class (label = directory name)
holding ``.pcap``/``.pcapng`` files (searched recursively), optionally merged
into classes by a taxonomy YAML (``category: [directory, ...]``); or an
``iscx-session784`` idx folder (the shipped train/t10k split is kept: t10k =
test, val carved from train).

Each file is read, split into sessions and vectorized by one worker process
(``Preprocess.vectorize_views``: the same code the gateway calls), then samples
are capped per class, split session-disjointly (``classifier.splits``) and
written atomically with a manifest.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import multiprocessing as mp
import os
import sys
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifier.dataerrors import DatasetError, DataError
from classifier.dataset import SPLIT_NAMES, save_dataset
from classifier.pcapio import read_ip_packets
from classifier.preprocess import Preprocess
from classifier.sessions import SplitStats, split_sessions

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")


def package_version() -> str:
    try:
        from importlib.metadata import version
        return version("sdn-egw")
    except Exception:  # not installed (running from a checkout)
        return "0.1.0+checkout"


# ---- inputs -----------------------------------------------------------------
def load_taxonomy(path: str | os.PathLike) -> dict[str, str]:
    """``{directory: category}`` from a YAML ``category: [directory, ...]`` file."""
    import yaml
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read taxonomy: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise DatasetError(f"{path}:{where} not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict) or not doc:
        raise DatasetError(f"{path}: taxonomy must map category -> list of directory names")
    out: dict[str, str] = {}
    for cat, dirs in doc.items():
        if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
            raise DatasetError(f"{path}: category {cat!r} must be a list of directory names")
        for d in dirs:
            if d in out and out[d] != str(cat):
                raise DatasetError(f"{path}: directory {d!r} is in both {out[d]!r} and {cat!r}")
            out[d] = str(cat)
    return out


def find_captures(root: Path) -> dict[str, list[Path]]:
    """``{class directory: [capture files]}`` (sorted)."""
    if not root.is_dir():
        raise DatasetError(f"{root}: input is not a directory")
    out = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in CAPTURE_SUFFIXES)
        if files:
            out[sub.name] = files
    if not out:
        raise DatasetError(f"{root}: no class subdirectories with .pcap/.pcapng files")
    return out


# ---- per-file work (runs in a worker process) ---------------------------------
@dataclass
class FileResult:
    path: str
    index: int
    X: np.ndarray | None = None
    rows_per_session: list[int] = field(default_factory=list)
    packets: int = 0
    sessions: int = 0
    sha256: str = ""
    error: str | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def session_vectors(path, pre: Preprocess, stats: SplitStats | None = None, strict: bool = False,
                    warnings: list[str] | None = None):
    """``(k, session, x)`` for each session of a capture (``k`` its index among all the
    file's sessions) that yields a vector: the order in which a dataset numbers sessions.
    ``strict``/``warnings``: a capture cut mid-record, see :func:`read_ip_packets`."""
    sessions = split_sessions(read_ip_packets(path, strict, warnings), pre.idle_timeout,
                              pre.bidirectional, stats)
    for k, s in enumerate(sessions):
        x = pre.vectorize_views(list(zip((p[0] for p in s.packets), s.views,
                                         (p[2] for p in s.packets))))
        if len(x):
            yield k, s, x


def process_file(job: tuple[int, str, dict, bool]) -> FileResult:
    index, path, pre_d, strict = job
    pre = Preprocess.from_dict(pre_d)
    res = FileResult(path=path, index=index)
    t0 = time.perf_counter()
    try:
        st = SplitStats()
        chunks = []
        for _k, _s, x in session_vectors(path, pre, st, strict, res.warnings):
            chunks.append(x)
            res.rows_per_session.append(len(x))
        res.packets = st.packets
        res.sessions = st.sessions
        shape = pre.sample_shape
        res.X = np.concatenate(chunks) if chunks else np.zeros((0, *shape), np.float32)
        with open(path, "rb") as fh:
            res.sha256 = hashlib.sha256(fh.read()).hexdigest()
    except DataError as exc:
        res.error = str(exc)
    res.seconds = time.perf_counter() - t0
    return res


def _file_results(jobs_list, n_jobs: int, ray: str | None):
    """:func:`process_file` of each job, results as they finish: Ray tasks (``ray``), a
    pool of ``n_jobs`` local processes, or this process."""
    if ray:
        from classifier.cluster import RayPool
        with RayPool(ray) as pool:
            yield from pool.imap_unordered(process_file, jobs_list)
    elif n_jobs == 1:
        yield from map(process_file, jobs_list)
    else:
        with mp.get_context("fork" if sys.platform.startswith("linux") else "spawn").Pool(n_jobs) as pool:
            yield from pool.imap_unordered(process_file, jobs_list, chunksize=1)


# ---- the build ----------------------------------------------------------------
@dataclass
class BuildResult:
    out: str
    labels: list[str]
    counts: dict[str, dict[str, int]]
    skipped: list[str]
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="file", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def build_from_captures(input_dir, out, pre: Preprocess, taxonomy=None, max_per_class=None,
                        jobs=None, seed=0, fractions=(0.8, 0.1, 0.1), skip_bad=False,
                        min_files=5, progress=True, argv=None, strict=False,
                        ray: str | None = None) -> BuildResult:
    """The per-file work (:func:`process_file`) runs in this process, in ``jobs`` local
    worker processes, or with ``ray`` (a cluster address, or ``local``) as Ray tasks; the
    driver assembles the results by file index, so all three write the same arrays."""
    root = Path(input_dir)
    dirs = find_captures(root)
    notes = []
    if taxonomy:
        tax = load_taxonomy(taxonomy)
        unknown = sorted(set(dirs) - set(tax))
        if unknown:
            notes.append(f"{len(unknown)} director{'y' if len(unknown) == 1 else 'ies'} not in the taxonomy, "
                         f"ignored: {', '.join(unknown)}")
        absent = sorted(set(tax) - set(dirs))
        if absent:
            notes.append(f"taxonomy names directories that are absent: {', '.join(absent)}")
        dir_class = {d: tax[d] for d in dirs if d in tax}
    else:
        dir_class = {d: d for d in dirs}
    labels = sorted(set(dir_class.values()))
    if not labels:
        raise DatasetError(f"{input_dir}: no class directory is named in taxonomy {taxonomy}")
    label_index = {c: i for i, c in enumerate(labels)}
    files = [(f, d) for d in sorted(dir_class) for f in dirs[d]]
    jobs_list = [(i, str(f), pre.to_dict(), strict) for i, (f, _d) in enumerate(files)]
    n_jobs = max(1, min(jobs or os.cpu_count() or 1, len(files)))
    results: list[FileResult | None] = [None] * len(files)
    bar = _progress(len(files), "dataset build" + (" (ray)" if ray else ""), progress)
    t0 = time.perf_counter()
    pkts = 0
    try:
        with closing(_file_results(jobs_list, n_jobs, ray)) as it:
            for r in it:
                results[r.index] = r
                if r.error and not skip_bad:
                    raise DatasetError(r.error)
                pkts += r.packets
                bar.update(1)
                bar.set_postfix(packets=pkts, refresh=False)
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    skipped = [r.error for r in results if r.error]
    good = [r for r in results if not r.error]
    warnings = [w for r in good for w in r.warnings]
    # sessions, capped per class
    rng = np.random.default_rng(seed)
    per_class_sessions: dict[int, list[tuple[int, int]]] = {}  # class -> [(result idx, session k)]
    for r in good:
        c = label_index[dir_class[files[r.index][1]]]
        per_class_sessions.setdefault(c, []).extend((r.index, k) for k in range(len(r.rows_per_session)))
    keep: set[tuple[int, int]] = set()
    capped = {}
    for c, lst in per_class_sessions.items():
        if max_per_class and len(lst) > max_per_class:
            pick = rng.choice(len(lst), size=max_per_class, replace=False)
            keep.update(lst[i] for i in pick)
            capped[labels[c]] = len(lst)
        else:
            keep.update(lst)
    Xs, ys, sess, file_of_session = [], [], [], {}
    sid = 0
    file_entries = []
    for r in good:
        c = label_index[dir_class[files[r.index][1]]]
        off = 0
        used = rows = 0
        for k, n in enumerate(r.rows_per_session):
            if (r.index, k) in keep:
                Xs.append(r.X[off:off + n])
                ys.append(np.full(n, c, np.int64))
                sess.append(np.full(n, sid, np.int64))
                file_of_session[sid] = r.index
                sid += 1
                used += 1
                rows += n
            off += n
        file_entries.append({"path": os.path.relpath(r.path, root), "directory": files[r.index][1],
                             "class": labels[c], "sha256": r.sha256, "packets": r.packets,
                             "sessions": r.sessions, "sessions_used": used, "samples": rows})
        r.X = None
    shape = pre.sample_shape
    X = np.concatenate(Xs) if Xs else np.zeros((0, *shape), np.float32)
    y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    session = np.concatenate(sess) if sess else np.zeros(0, np.int64)
    if len(X) == 0:
        raise DatasetError(f"{input_dir}: no usable sessions after filtering (nothing to write)")
    from classifier.splits import assign_splits
    split, split_info = assign_splits(X, y, session, fractions, seed, file_of_session, min_files)
    by_file = [labels[int(c)] for c in split_info.get("classes_split_by_file", [])]
    if by_file:
        merged = [c for c in by_file if len({files[i][1] for i in range(len(files))
                                             if dir_class[files[i][1]] == c}) > 1]
        notes.append(
            f"split by capture file (min_files={min_files}) for {', '.join(by_file)}: their val/test "
            "sessions come from captures never seen in training"
            + (f"; with the taxonomy, {', '.join(merged)} merge several directories, so whole "
               "applications are held out" if merged else "")
            + ". For a per-session split use --min-files 1000000.")
    counts = _counts(labels, y, session, split)
    manifest = {
        "format": "egw-dataset/1", "version": package_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "input": str(root), "input_kind": "captures", "taxonomy": str(taxonomy) if taxonomy else None,
        "classes": {lab: sorted(d for d, c in dir_class.items() if c == lab) for lab in labels},
        "options": {"max_per_class": max_per_class, "seed": seed, "fractions": list(fractions),
                    "skip_bad": skip_bad, "jobs": n_jobs, "min_files": min_files,
                    "strict": strict, "ray": ray},
        "argv": argv, "files": file_entries, "skipped": skipped, "notes": notes,
        "warnings": warnings,
        "capped_classes": capped, "split": split_info, "counts": counts,
        "packets_read": int(pkts), "seconds": round(elapsed, 2),
    }
    save_dataset(out, X, y, session, split, labels, pre, manifest)
    return BuildResult(str(out), labels, counts, skipped, manifest, warnings)


def build_from_idx(folder, out, max_per_class=None, seed=0, val_fraction=0.1, argv=None) -> BuildResult:
    """The idx session vectors as a dataset (repr session784, layers l7); t10k = test."""
    from classifier.idx import load_idx_folder
    from classifier.splits import carve_val
    trX, trY, teX, teY, labels, srcs = load_idx_folder(folder)
    rng = np.random.default_rng(seed)
    capped = {}
    if max_per_class:
        keep_tr, keep_te = [], []
        for c in range(len(labels)):
            for Y, keep in ((trY, keep_tr), (teY, keep_te)):
                idx = np.flatnonzero(Y == c)
                if len(idx) > max_per_class:
                    capped[labels[c]] = capped.get(labels[c], 0) + len(idx)
                    idx = np.sort(rng.choice(idx, size=max_per_class, replace=False))
                keep.append(idx)
        ktr, kte = np.sort(np.concatenate(keep_tr)), np.sort(np.concatenate(keep_te))
        trX, trY, teX, teY = trX[ktr], trY[ktr], teX[kte], teY[kte]
    val = carve_val(trY, val_fraction, seed, trX)
    split = np.concatenate([np.where(val, 1, 0), np.full(len(teY), 2)]).astype(np.int8)
    X = np.concatenate([trX, teX]).astype(np.float32) / np.float32(255.0)
    y = np.concatenate([trY, teY])
    session = np.arange(len(y), dtype=np.int64)
    pre = Preprocess(repr="session784", layers="l7", max_packets=None)
    counts = _counts(labels, y, session, split)
    manifest = {
        "format": "egw-dataset/1", "version": package_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "input": str(folder), "input_kind": "idx", "files": srcs,
        "options": {"max_per_class": max_per_class, "seed": seed, "val_fraction": val_fraction},
        "argv": argv, "skipped": [], "capped_classes": capped, "counts": counts,
        "split": {"kind": "shipped train/t10k (t10k = test), val carved from train, stratified",
                  "seed": seed},
        "notes": ["Vectors made by Wang et al. 2017 (first 784 bytes of the session's L7 payload); "
                  "their filtering/masking, not ours: preprocess describes the shape only."],
    }
    save_dataset(out, X, y, session, split, labels, pre, manifest)
    return BuildResult(str(out), labels, counts, [], manifest)


def _counts(labels, y, session, split) -> dict[str, dict[str, int]]:
    out = {}
    for i, name in enumerate(labels):
        m = y == i
        c = {SPLIT_NAMES[s]: int(np.sum(m & (split == s))) for s in SPLIT_NAMES}
        c["sessions"] = int(len(np.unique(session[m])))
        out[name] = c
    return out


def format_counts(counts: dict[str, dict[str, int]]) -> str:
    w = max([len(k) for k in counts] + [5])
    lines = [f"{'class':<{w}}  {'sessions':>8}  {'train':>7}  {'val':>6}  {'test':>6}"]
    tot = {"sessions": 0, "train": 0, "val": 0, "test": 0}
    for k, c in counts.items():
        lines.append(f"{k:<{w}}  {c['sessions']:>8}  {c['train']:>7}  {c['val']:>6}  {c['test']:>6}")
        for t in tot:
            tot[t] += c[t]
    lines.append(f"{'total':<{w}}  {tot['sessions']:>8}  {tot['train']:>7}  {tot['val']:>6}  {tot['test']:>6}")
    return "\n".join(lines)
