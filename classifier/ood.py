"""Out-of-distribution score of a bundle (runtime side: numpy and LiteRT, no TensorFlow).

A session is *unfamiliar* when its features are far from what the model was trained on.
A score is one *part*, or the sum or the maximum of two (``combine``), each part divided
by its ``scale`` (its validation quantile, so that fused parts weigh alike). Features are
unit-length rows, in the model's **penultimate-layer embedding** (``embed.tflite``, the
input of the softmax layer, exported from ``model.keras`` by ``egw ood fit``; Keras
families only) or in the **input vector** itself (kpackets: without the inter-arrival
column, whose training values are synthetic). A part's ``method`` is one of:

- ``centroids``: 1 - cosine similarity to the nearest *centroid* of the training
  sessions (k-means; only clusters of at least ``min_members`` sessions are kept);
- ``mahalanobis``: the smallest Mahalanobis distance (squared) to a class mean, with one
  covariance shared by the classes (Ledoit-Wolf shrinkage), as in Lee et al. (2018).

The bundle stores aggregates only, never one training session's features: centroids of
several sessions, class means and a covariance. Above ``threshold`` (fitted so that a
chosen share of validation sessions exceed it) the bundle answers ``unknown``.
Files in the bundle:

- ``ood.npz``, per part ``i``: ``centroids<i>`` (float16, unit rows), ``members<i>``
  (sessions per centroid) and ``keep<i>`` (the feature columns that are not zero in
  every centroid: the others add nothing to a dot product; a query is normalised over
  all columns first); or ``means<i>`` (classes x d) and ``precision<i>`` (d x d), float32;
- ``embed.tflite``: float LiteRT model, bundle input -> embedding (absent without an
  embedding part);
- ``card.json["ood"]``: ``parts`` (``space``, ``method``, ``scale``; centroids also
  ``clusters`` and ``min_members``), ``combine``, ``threshold``, ``input_columns``, how it
  was chosen (see :mod:`classifier.ood_fit`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

OOD_FILE = "ood.npz"
EMBED_MODEL = "embed.tflite"
SPACES = ("embedding", "input")
METHODS = ("centroids", "mahalanobis")
COMBINES = ("sum", "max")
SMALL_BATCH = 8


def normalise(F: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    F = np.asarray(F, dtype=np.float32).reshape(len(F), -1)
    n = np.linalg.norm(F, axis=1, keepdims=True)
    return F / np.maximum(n, 1e-12)


def _dot(Q: np.ndarray, R: np.ndarray) -> np.ndarray:
    # a few rows (the gateway: one session at a time) without BLAS: waking a multithreaded
    # BLAS between LiteRT calls costs milliseconds on a loaded machine, the product itself
    # a fraction of one
    return np.einsum("ij,kj->ik", Q, R) if len(Q) <= SMALL_BATCH else Q @ R.T


def nearest_cosine(Q: np.ndarray, C: np.ndarray) -> np.ndarray:
    """1 - cosine similarity of each (unit) row of ``Q`` to its nearest (unit) row of ``C``."""
    if len(Q) == 0:
        return np.zeros(0, dtype=np.float32)
    return (1.0 - _dot(Q, C).max(axis=1)).astype(np.float32)


def mahalanobis_min(Q: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Smallest squared Mahalanobis distance of each row of ``Q`` to a row of ``means``."""
    if len(Q) == 0:
        return np.zeros(0, dtype=np.float32)
    D = Q[:, None, :] - means[None]                          # (n, classes, d)
    return np.einsum("ncd,de,nce->nc", D, precision, D).min(axis=1).astype(np.float32)


def features(x: np.ndarray, embedded: np.ndarray | None = None,
             input_columns: int | None = None) -> np.ndarray:
    """One unit-length feature row per bundle input of ``x``: its embedding when
    ``embedded`` (the embedding model's output for ``x``) is given, else the input itself
    (its first ``input_columns`` columns of the last axis when given)."""
    x = np.asarray(x, np.float32)
    F = embedded if embedded is not None else (x[..., :input_columns] if input_columns else x)
    return normalise(np.asarray(F, np.float32).reshape(len(x), -1))


def combine(dists: list[np.ndarray], how: str) -> np.ndarray:
    """The parts' scaled distances as one score: their sum or their maximum."""
    stacked = np.stack(dists).astype(np.float32)
    return stacked.max(axis=0) if how == "max" else stacked.sum(axis=0)


@dataclass
class Part:
    """One distance in ``space`` by ``method``, divided by ``scale``. ``arrays``:
    centroids: ``centroids`` (unit rows, ``keep`` columns only), ``members``, ``keep``;
    mahalanobis: ``means``, ``precision``."""

    space: str
    method: str
    arrays: dict
    scale: float = 1.0

    def distance(self, F: np.ndarray) -> np.ndarray:
        a = self.arrays
        if self.method == "centroids":
            keep = a.get("keep")
            return nearest_cosine(F if keep is None else F[:, keep], a["centroids"])
        return mahalanobis_min(F, a["means"], a["precision"])


#: arrays each method stores per part (``<name><i>`` in ood.npz)
ARRAYS = {"centroids": ("centroids", "members", "keep"), "mahalanobis": ("means", "precision")}


@dataclass
class OodScorer:
    """Scores bundle inputs: the sum (or maximum) of its parts' scaled distances."""

    parts: list[Part]
    threshold: float
    combine: str = "sum"
    embed: object | None = None        # classifier.bundle._Runner of embed.tflite
    input_columns: int | None = None   # input space: leading columns of the last axis used

    def score(self, x: np.ndarray) -> np.ndarray:
        """OOD score per sample of ``x`` (n, *feature_shape): higher = less familiar."""
        x = np.asarray(x, np.float32)
        emb = self.embed.run(x) if any(p.space == "embedding" for p in self.parts) else None
        feats = {}
        dists = []
        for p in self.parts:
            if p.space not in feats:
                feats[p.space] = features(x, emb if p.space == "embedding" else None,
                                          self.input_columns)
            dists.append(p.distance(feats[p.space]) / p.scale)
        return combine(dists, self.combine)


def _check_arrays(path: Path, i: int, method: str, a: dict, width: int | None) -> None:
    """Shapes that fit together (a hand-edited or truncated file fails here, by name)."""
    from classifier.bundle import BundleError

    bad = f"{path}: part {i} ({method}): "
    if method == "centroids":
        C, m, keep = a["centroids"], a["members"], a["keep"]
        if C.ndim != 2 or len(C) == 0 or m.shape != (len(C),) or keep.shape != (C.shape[1],):
            raise BundleError(bad + "needs centroids (n, d), members (n,) and keep (d,)")
        if width is not None and (keep.min(initial=0) < 0 or keep.max(initial=0) >= width):
            raise BundleError(bad + f"keep names columns outside the {width} features")
    else:
        M, P = a["means"], a["precision"]
        if M.ndim != 2 or len(M) == 0 or P.shape != (M.shape[1], M.shape[1]):
            raise BundleError(bad + "needs means (classes, d) and a (d, d) precision")
        if width is not None and M.shape[1] != width:
            raise BundleError(bad + f"means are {M.shape[1]}-wide, the features {width}")
    if not all(np.isfinite(v).all() for v in a.values()):
        raise BundleError(bad + "holds NaN or infinite values")


def load_scorer(d: Path, card: dict, runner_cls, check_file) -> OodScorer | None:
    """The bundle's scorer, or None when ``card.json`` has no fitted ``ood`` entry."""
    from classifier.bundle import BundleError

    spec = card.get("ood")
    if not spec:
        return None
    path = d / OOD_FILE
    where = f"{d / 'card.json'}: 'ood'"
    try:
        thr = float(spec["threshold"])
        cols = int(spec["input_columns"]) if spec.get("input_columns") else None
        how = str(spec.get("combine", "sum"))
        specs = [(str(p["space"]), str(p["method"]), float(p["scale"])) for p in spec["parts"]]
    except (KeyError, TypeError, ValueError) as exc:
        hint = ("; it is of the older kNN-bank format: refit it with `egw ood fit`"
                if "'method'" in repr(exc) else "")
        raise BundleError(f"{where} needs threshold and parts (space, method, scale) "
                          f"({exc!r}){hint}") from None
    if how not in COMBINES:
        raise BundleError(f"{where}: combine must be one of {COMBINES}")
    if not specs or any(sp not in SPACES or m not in METHODS or not sc > 0 for sp, m, sc in specs):
        raise BundleError(f"{where}: each part needs a space in {SPACES}, a method in "
                          f"{METHODS} and scale > 0")
    check_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = [{name: np.asarray(z[f"{name}{i}"]) for name in ARRAYS[m]}
                      for i, (_, m, _) in enumerate(specs)]
    except Exception as exc:
        raise BundleError(f"{path}: cannot read the OOD arrays ({exc})") from None
    embed = None
    if any(sp == "embedding" for sp, *_ in specs):
        check_file(d / EMBED_MODEL)
        embed = runner_cls(d / EMBED_MODEL)
    parts = []
    for i, ((sp, m, sc), a) in enumerate(zip(specs, arrays)):
        width = int(embed.out["shape"][-1]) if sp == "embedding" else None
        _check_arrays(path, i, m, a, width)
        if m == "centroids":
            a = {"centroids": np.ascontiguousarray(normalise(a["centroids"])),
                 "members": a["members"].astype(np.int64), "keep": a["keep"].astype(np.int64)}
        else:
            a = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in a.items()}
        parts.append(Part(sp, m, a, sc))
    return OodScorer(parts=parts, threshold=thr, combine=how, embed=embed, input_columns=cols)
