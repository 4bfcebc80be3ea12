"""Session-disjoint, stratified, seeded train/val/test splits.

Units that must stay on one side are built with a union-find over sessions:

- all samples of one session (packet representations give several per session);
- sessions whose samples are byte-identical to samples of other sessions (exact
  duplicate vectors, e.g. the same TLS ClientHello sent twice) - so no vector
  occurs on both sides (the audit checks this);
- optionally all sessions of one capture file, for classes that have at least
  ``min_files`` files (then a split tests on unseen captures).

Groups are shuffled with ``seed`` and each goes to the split that is furthest
below its target share for the classes in the group (largest deficit first),
which stratifies by class.
"""
from __future__ import annotations

import hashlib

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2


class _UF:
    def __init__(self, n: int) -> None:
        self.p = list(range(n))

    def find(self, a: int) -> int:
        p = self.p
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.p[max(ra, rb)] = min(ra, rb)


def row_hashes(X: np.ndarray) -> list[bytes]:
    """A digest of each sample's exact bytes."""
    flat = np.ascontiguousarray(X).reshape(len(X), -1)
    return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in flat]


def assign_splits(X: np.ndarray, y: np.ndarray, session: np.ndarray,
                  fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0,
                  file_of_session: dict[int, int] | None = None, min_files: int = 5,
                  hashes: list[bytes] | None = None) -> tuple[np.ndarray, dict]:
    """Return ``(split per sample (int8), info)``; see the module doc."""
    n = len(X)
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"bad split fractions {fractions}")
    fr = fr / fr.sum()
    sess_ids, sess_idx = np.unique(session, return_inverse=True)
    uf = _UF(len(sess_ids))
    hashes = hashes if hashes is not None else row_hashes(X)
    first: dict[bytes, int] = {}
    for i, h in enumerate(hashes):
        s = int(sess_idx[i])
        j = first.setdefault(h, s)
        if j != s:
            uf.union(j, s)
    dup_merges = sum(1 for i in range(len(sess_ids)) if uf.find(i) != i)
    by_file = []
    if file_of_session:
        classes = np.unique(y)
        files_per_class = {}
        sess_class = {}
        for i in range(n):
            sess_class[int(sess_idx[i])] = int(y[i])
        for si, sid in enumerate(sess_ids):
            f = file_of_session.get(int(sid))
            if f is not None:
                files_per_class.setdefault(sess_class[si], set()).add(f)
        rep: dict[int, int] = {}
        for si, sid in enumerate(sess_ids):
            c = sess_class[si]
            f = file_of_session.get(int(sid))
            if f is not None and len(files_per_class.get(c, ())) >= min_files:
                j = rep.setdefault(f, si)
                if j != si:
                    uf.union(j, si)
        by_file = sorted(str(c) for c in classes if len(files_per_class.get(int(c), ())) >= min_files)
    root = np.array([uf.find(int(s)) for s in sess_idx])
    groups, ginv = np.unique(root, return_inverse=True)
    n_classes = int(y.max()) + 1 if n else 0
    gcount = np.zeros((len(groups), n_classes))
    np.add.at(gcount, (ginv, y), 1)
    target = gcount.sum(0)[None, :] * fr[:, None]          # (3, classes)
    have = np.zeros_like(target)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(groups))
    # big groups first (they are the hardest to place), random order among equals
    order = order[np.argsort(-gcount[order].sum(1), kind="stable")]
    gsplit = np.zeros(len(groups), dtype=np.int8)
    for g in order:
        c = gcount[g]
        deficit = ((target - have) * c[None, :]).sum(1) / max(c.sum(), 1)
        deficit[fr == 0] = -np.inf
        s = int(np.argmax(deficit))
        gsplit[g] = s
        have[s] += c
    split = gsplit[ginv].astype(np.int8)
    info = {"fractions": fr.round(4).tolist(), "seed": seed, "groups": int(len(groups)),
            "sessions": int(len(sess_ids)), "sessions_merged_by_duplicate_vectors": int(dup_merges),
            "classes_split_by_file": by_file, "min_files": min_files}
    return split, info


def carve_val(y: np.ndarray, frac: float = 0.1, seed: int = 0, X: np.ndarray | None = None) -> np.ndarray:
    """Pick a stratified ``frac`` of ``y``'s indices as validation (for pre-split data).
    With ``X``, byte-identical samples are kept on one side (all in val or none)."""
    rng = np.random.default_rng(seed)
    if X is not None:
        _u, group = np.unique(np.asarray(row_hashes(X), dtype=object).astype("S16"), return_inverse=True)
    else:
        group = np.arange(len(y))
    val = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        gs = np.unique(group[y == c])
        k = int(round(len(gs) * frac))
        if len(gs) >= 2 and k == 0:
            k = 1
        pick = rng.choice(gs, size=min(k, len(gs) - 1), replace=False)
        val |= np.isin(group, pick)
    return val
