"""Out-of-distribution score of a bundle (runtime side: numpy and LiteRT, no TensorFlow).

A session is *unfamiliar* when its features are far from every training session's:
the score is the cosine (1 - cosine similarity) or Euclidean distance to its ``k``-th
nearest training session, in the model's **penultimate-layer embedding** (``embed.tflite``,
the input of the softmax layer, exported from ``model.keras`` by ``egw ood fit``) or,
for bundles without a Keras model (tree families), in the **input vector** itself
(kpackets: without the inter-arrival column, whose training values are synthetic).
Above ``threshold`` (fitted so that a chosen share of validation sessions exceed it)
the bundle answers ``unknown``. Files in the bundle:

- ``ood.npz``: ``bank`` (n, d) float32, the features of (up to ``MAX_BANK``) training
  sessions (L2-normalised for the cosine metric);
- ``embed.tflite``: float LiteRT model, bundle input -> embedding (absent in ``input`` space);
- ``card.json["ood"]``: ``space``, ``metric``, ``k``, ``threshold``, how it was chosen (see
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
    dot = Q @ bank.T                                   # (n, N)
    if metric == "cosine":
        d = 1.0 - dot
    else:
        d = np.sqrt(np.maximum((Q * Q).sum(1)[:, None] + (bank * bank).sum(1)[None] - 2 * dot, 0))
    k = min(k, bank.shape[0])
    return np.partition(d, k - 1, axis=1)[:, k - 1].astype(np.float32)


def features(x: np.ndarray, embed=None, input_columns: int | None = None,
             metric: str = "cosine") -> np.ndarray:
    """Features of bundle inputs ``x``, one flat row each: the embedding model's output, or
    the input itself (its first ``input_columns`` columns of the last axis when given);
    normalised to unit length for the cosine metric."""
    x = np.asarray(x, np.float32)
    F = embed.run(x) if embed is not None else (x[..., :input_columns] if input_columns else x)
    F = np.asarray(F, np.float32).reshape(len(F), -1)
    return normalise(F) if metric == "cosine" else F


@dataclass
class OodScorer:
    """Scores bundle inputs; ``embed`` runs the embedding model (None: input space)."""

    bank: np.ndarray
    k: int
    threshold: float
    space: str
    embed: object | None = None        # classifier.bundle._Runner of embed.tflite
    input_columns: int | None = None   # input space: leading columns of the last axis used
    metric: str = "cosine"

    def features(self, x: np.ndarray) -> np.ndarray:
        return features(x, self.embed, self.input_columns, self.metric)

    def score(self, x: np.ndarray) -> np.ndarray:
        """OOD score per sample of ``x`` (n, *feature_shape): higher = less familiar."""
        return knn_distance(self.features(x), self.bank, self.k, self.metric)


def load_scorer(d: Path, card: dict, runner_cls, check_file) -> OodScorer | None:
    """The bundle's scorer, or None when ``card.json`` has no fitted ``ood`` entry."""
    from classifier.bundle import BundleError

    spec = card.get("ood")
    if not spec:
        return None
    path = d / OOD_FILE
    try:
        space, k, thr = spec["space"], int(spec["k"]), float(spec["threshold"])
        cols = int(spec["input_columns"]) if spec.get("input_columns") else None
        metric = spec.get("metric", "cosine")
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{d / 'card.json'}: 'ood' needs space, k and threshold ({exc})") from None
    if space not in SPACES or metric not in METRICS or k < 1:
        raise BundleError(f"{d / 'card.json'}: 'ood' space must be one of {SPACES}, metric one "
                          f"of {METRICS} and k >= 1")
    check_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            bank = np.asarray(z["bank"], dtype=np.float32)
    except Exception as exc:
        raise BundleError(f"{path}: cannot read the OOD bank ({exc})") from None
    if bank.ndim != 2 or len(bank) == 0:
        raise BundleError(f"{path}: 'bank' must be a non-empty 2-D array")
    embed = None
    if space == "embedding":
        check_file(d / EMBED_MODEL)
        embed = runner_cls(d / EMBED_MODEL)
        width = int(embed.out["shape"][-1])
        if width != bank.shape[1]:
            raise BundleError(f"{d / EMBED_MODEL}: embeds {width} values but {path} holds "
                              f"{bank.shape[1]}-wide rows")
    return OodScorer(bank=bank, k=k, threshold=thr, space=space, embed=embed, input_columns=cols,
                     metric=metric)
