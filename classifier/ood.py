"""Out-of-distribution score of a bundle (runtime side: numpy and LiteRT, no TensorFlow).

A session is *unfamiliar* when its features are far from every training session's.
A score is one *part*, or the sum or the maximum of two (``combine``); a part is the cosine (1 - cosine similarity) or
Euclidean distance to the ``k``-th nearest training session, divided by its ``scale``,
in the model's **penultimate-layer embedding** (``embed.tflite``, the input of the
softmax layer, exported from ``model.keras`` by ``egw ood fit``; Keras families only) or
in the **input vector** itself (kpackets: without the inter-arrival column, whose
training values are synthetic). Above ``threshold`` (fitted so that a chosen share of
validation sessions exceed it) the bundle answers ``unknown``. Files in the bundle:

- ``ood.npz``: ``bank0``, ``bank1``: (n, d) float16, each part's raw features of (up
  to ``MAX_BANK``) training sessions (normalised on load for the cosine metric); for a
  cosine part, ``keep<i>``: the columns that are not zero in every bank row (the others
  add nothing to a dot product with the bank; a query is normalised over all columns
  first), which keeps the file and the per-session cost small;
- ``embed.tflite``: float LiteRT model, bundle input -> embedding (absent without an
  embedding part);
- ``card.json["ood"]``: ``parts`` (``space``, ``metric``, ``k``, ``scale``), ``combine``,
  ``threshold``, ``input_columns``, how it was chosen (see
  :mod:`classifier.ood_fit`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

OOD_FILE = "ood.npz"
EMBED_MODEL = "embed.tflite"
SPACES = ("embedding", "input")
METRICS = ("cosine", "euclidean")
COMBINES = ("sum", "max")
SMALL_BATCH = 8


def normalise(F: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    F = np.asarray(F, dtype=np.float32).reshape(len(F), -1)
    n = np.linalg.norm(F, axis=1, keepdims=True)
    return F / np.maximum(n, 1e-12)


def knn_distance(Q: np.ndarray, bank: np.ndarray, k: int, metric: str = "cosine") -> np.ndarray:
    """Distance of each row of ``Q`` to its ``k``-th nearest row of ``bank``: cosine
    (rows already normalised: 1 - dot product) or Euclidean."""
    if len(Q) == 0:
        return np.zeros(0, dtype=np.float32)
    # a few rows (the gateway: one session at a time) without BLAS: waking a multithreaded
    # BLAS between LiteRT calls costs milliseconds on a loaded machine, the product itself
    # a fraction of one
    dot = np.einsum("ij,kj->ik", Q, bank) if len(Q) <= SMALL_BATCH else Q @ bank.T   # (n, N)
    if metric == "cosine":
        d = 1.0 - dot
    else:
        d = np.sqrt(np.maximum((Q * Q).sum(1)[:, None] + (bank * bank).sum(1)[None] - 2 * dot, 0))
    k = min(k, bank.shape[0])
    return np.partition(d, k - 1, axis=1)[:, k - 1].astype(np.float32)


def features(x: np.ndarray, metric: str, embedded: np.ndarray | None = None,
             input_columns: int | None = None) -> np.ndarray:
    """One flat feature row per bundle input of ``x``: its embedding when ``embedded``
    (the embedding model's output for ``x``) is given, else the input itself (its first
    ``input_columns`` columns of the last axis when given); unit length for cosine."""
    x = np.asarray(x, np.float32)
    F = embedded if embedded is not None else (x[..., :input_columns] if input_columns else x)
    F = np.asarray(F, np.float32).reshape(len(x), -1)
    return normalise(F) if metric == "cosine" else F


def combine(dists: list[np.ndarray], how: str) -> np.ndarray:
    """The parts' scaled distances as one score: their sum or their maximum."""
    stacked = np.stack(dists).astype(np.float32)
    return stacked.max(axis=0) if how == "max" else stacked.sum(axis=0)


@dataclass
class Part:
    """One distance: ``k``-th nearest neighbour in ``bank``, in ``space`` with ``metric``,
    divided by ``scale`` (its validation quantile, so that fused parts weigh alike)."""

    space: str
    metric: str
    k: int
    bank: np.ndarray                 # float32, normalised for cosine, columns ``keep`` only
    scale: float = 1.0
    keep: np.ndarray | None = None   # columns of the features the bank holds (None: all)


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
        dists = []
        for p in self.parts:
            F = features(x, p.metric, emb if p.space == "embedding" else None, self.input_columns)
            if p.keep is not None:
                F = F[:, p.keep]
            dists.append(knn_distance(F, p.bank, p.k, p.metric) / p.scale)
        return combine(dists, self.combine)


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
        specs = [(str(p["space"]), str(p["metric"]), int(p["k"]), float(p["scale"]))
                 for p in spec["parts"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{where} needs threshold and parts (space, metric, k, scale) "
                          f"({exc!r})") from None
    if how not in COMBINES:
        raise BundleError(f"{where}: combine must be one of {COMBINES}")
    if not specs or any(sp not in SPACES or m not in METRICS or k < 1 or sc <= 0
                        for sp, m, k, sc in specs):
        raise BundleError(f"{where}: each part needs a space in {SPACES}, a metric in "
                          f"{METRICS}, k >= 1 and scale > 0")
    check_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = [np.asarray(z[f"bank{i}"], dtype=np.float32) for i in range(len(specs))]
            keeps = [np.asarray(z[f"keep{i}"], dtype=np.int64) if f"keep{i}" in z.files else None
                     for i in range(len(specs))]
    except Exception as exc:
        raise BundleError(f"{path}: cannot read the OOD banks ({exc})") from None
    if any(b.ndim != 2 or len(b) == 0 for b in raw):
        raise BundleError(f"{path}: each bank must be a non-empty 2-D array")
    banks = []
    for (sp, m, *_), b, keep in zip(specs, raw, keeps):
        if keep is not None and m != "cosine":
            raise BundleError(f"{path}: only a cosine part may keep some columns")
        banks.append(np.ascontiguousarray(normalise(b) if m == "cosine" else b))
    embed = None
    if any(sp == "embedding" for sp, *_ in specs):
        check_file(d / EMBED_MODEL)
        embed = runner_cls(d / EMBED_MODEL)
        width = int(embed.out["shape"][-1])
        for (sp, *_), b, keep in zip(specs, banks, keeps):
            if sp == "embedding" and keep is None and width != b.shape[1]:
                raise BundleError(f"{d / EMBED_MODEL}: embeds {width} values but {path} holds "
                                  f"{b.shape[1]}-wide rows")
    parts = [Part(sp, m, k, b, sc, keep) for (sp, m, k, sc), b, keep in zip(specs, banks, keeps)]
    return OodScorer(parts=parts, threshold=thr, combine=how, embed=embed, input_columns=cols)
