"""Model bundle: load a trained classifier directory and run it through LiteRT.

A bundle is a directory holding ``model.tflite`` (float), ``model.int8.tflite``
(full-integer), ``labels.json``, ``preprocess.json``, ``card.json`` and
optionally ``model.keras`` and PNG plots (see docs/models.md).

This module must stay light: it is imported by the controller process, so it
never imports TensorFlow. Inference goes through
``ai_edge_litert.interpreter.Interpreter`` with one thread.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifier.ood import EMBED_MODEL, OOD_FILE, OodScorer, load_scorer

DEFAULT_BUNDLE_DIR = Path(__file__).resolve().parent / "models" / "default"

UNKNOWN = "unknown"

FLOAT_MODEL = "model.tflite"
INT8_MODEL = "model.int8.tflite"
LABELS_FILE = "labels.json"
PREPROCESS_FILE = "preprocess.json"
CARD_FILE = "card.json"

# Largest accepted size of each bundle file, in bytes: a corrupt or hostile bundle
# must not make the controller read or parse gigabytes (docs/operations.md, Limits).
MAX_FILE_BYTES = {
    LABELS_FILE: 256 << 10,
    PREPROCESS_FILE: 64 << 10,
    CARD_FILE: 4 << 20,
    FLOAT_MODEL: 64 << 20,
    INT8_MODEL: 64 << 20,
    OOD_FILE: 64 << 20,
    EMBED_MODEL: 64 << 20,
}


class BundleError(Exception):
    """A missing or corrupt model bundle; the message names the file and the problem."""

    user_facing = True


def _check_file(path: Path) -> None:
    """A regular file no larger than its entry in :data:`MAX_FILE_BYTES`."""
    if not path.is_file():
        raise BundleError(f"{path}: missing bundle file")
    limit = MAX_FILE_BYTES[path.name]
    size = path.stat().st_size
    if size > limit:
        raise BundleError(f"{path}: {size} bytes, more than the {limit}-byte limit "
                          f"for {path.name}")


def _read_json(path: Path) -> Any:
    _check_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise BundleError(f"{path}: nested too deeply to parse") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc


class _Runner:
    """One LiteRT interpreter (single-threaded) with input/output (de)quantisation."""

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        try:
            # From bytes in memory, not model_path: LiteRT maps that file, and a file
            # rewritten in place under a running gateway (a new bundle copied over the
            # old) would then kill the process with SIGBUS at the next inference.
            self._model = path.read_bytes()
            self.interp = Interpreter(model_content=self._model, num_threads=1)
            self.interp.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError/RuntimeError on bad files
            raise BundleError(f"{path}: cannot load TFLite model ({exc})") from exc
        ins = self.interp.get_input_details()
        outs = self.interp.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise BundleError(
                f"{path}: expected one input and one output, found {len(ins)} and {len(outs)}"
            )
        self.inp = ins[0]
        self.out = outs[0]
        sig = self.inp.get("shape_signature")
        if sig is None or len(sig) == 0:
            sig = self.inp["shape"]
        self.input_shape = tuple(int(d) for d in sig)
        self.feature_shape = tuple(int(d) for d in self.inp["shape"][1:])
        self.in_dtype = np.dtype(self.inp["dtype"])
        self.out_dtype = np.dtype(self.out["dtype"])
        self.in_scale, self.in_zero = self.inp.get("quantization", (0.0, 0))
        self.out_scale, self.out_zero = self.out.get("quantization", (0.0, 0))
        self.quantized = self.in_dtype in (np.dtype(np.int8), np.dtype(np.uint8))
        self._batch = int(self.inp["shape"][0])
        self._lock = threading.Lock()

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return x.astype(self.in_dtype, copy=False)
        info = np.iinfo(self.in_dtype)
        q = np.round(x / self.in_scale + self.in_zero)
        return np.clip(q, info.min, info.max).astype(self.in_dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        if self.out_dtype in (np.dtype(np.int8), np.dtype(np.uint8)):
            return (y.astype(np.float32) - self.out_zero) * self.out_scale
        return y.astype(np.float32, copy=False)

    def run(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        with self._lock:
            if n != self._batch:
                self.interp.resize_tensor_input(self.inp["index"], [n, *self.feature_shape])
                self.interp.allocate_tensors()
                self._batch = n
            self.interp.set_tensor(self.inp["index"], self._quantize(x))
            self.interp.invoke()
            y = self.interp.get_tensor(self.out["index"])
        return self._dequantize(np.array(y))


@dataclass
class Bundle:
    """A loaded model bundle. ``predict``/``classify`` run through LiteRT only."""

    path: Path
    labels: list[str]
    preprocess: Any  # classifier.preprocess.Preprocess
    threshold: float
    card: dict
    model_file: Path
    _runner: _Runner = field(repr=False)
    max_batch: int = 256
    ood: OodScorer | None = field(default=None, repr=False)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input batch, batch dimension first (-1 = any)."""
        return self._runner.input_shape

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one sample (the input shape without the batch dimension)."""
        return self._runner.feature_shape

    @property
    def quantized(self) -> bool:
        return self._runner.quantized

    def _as_batch(self, batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch, dtype=np.float32)
        if x.shape == self.feature_shape:
            x = x[None]
        if x.ndim >= 2 and x.shape[1:] != self.feature_shape and (
            int(np.prod(x.shape[1:])) == int(np.prod(self.feature_shape))
        ):
            x = x.reshape((x.shape[0], *self.feature_shape))
        if x.shape[1:] != self.feature_shape:
            raise ValueError(
                f"{self.model_file}: input of shape {x.shape[1:]} given, model wants {self.feature_shape}"
            )
        return x

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, len(labels)), for a batch of vectors.

        ``batch`` has shape ``(n, *feature_shape)`` (a single sample of shape
        ``feature_shape`` is accepted too); any float or integer dtype.
        """
        x = self._as_batch(batch)
        if x.shape[0] == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        parts = [
            self._runner.run(x[i : i + self.max_batch]) for i in range(0, x.shape[0], self.max_batch)
        ]
        return np.concatenate(parts, axis=0)

    def ood_score(self, batch: np.ndarray) -> np.ndarray | None:
        """Out-of-distribution score per sample (higher = less familiar), or None when
        the bundle has no fitted OOD part (``egw ood fit``)."""
        if self.ood is None:
            return None
        x = self._as_batch(batch)
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([self.ood.score(x[i : i + self.max_batch])
                               for i in range(0, x.shape[0], self.max_batch)])

    def classify(self, batch: np.ndarray) -> list[tuple[str, float]]:
        """``(label, confidence)`` per sample; ``'unknown'`` when below ``threshold``
        or, with an OOD part, when the OOD score is above its threshold."""
        return self.decide(self.predict(batch), self.ood_score(batch))

    def classify_scored(self, batch: np.ndarray) -> list[tuple[str, float, float | None]]:
        """``(label, confidence, OOD score or None)`` per sample: what the gateway calls,
        so that its sessions show the score their decision was made on."""
        ood = self.ood_score(batch)
        out = self.decide(self.predict(batch), ood)
        scores = [None] * len(out) if ood is None else ood.tolist()
        return [(label, conf, s) for (label, conf), s in zip(out, scores)]

    def decide(self, probs: np.ndarray, ood: np.ndarray | None = None
               ) -> list[tuple[str, float]]:
        """Turn probabilities (and OOD scores, if given) into ``(label, confidence)``.

        With OOD scores the OOD threshold decides what is ``unknown`` (the max-probability
        ``threshold`` is not a distance from the data); without, ``threshold`` does."""
        idx = probs.argmax(axis=1)
        conf = probs[np.arange(len(idx)), idx]
        if ood is not None and self.ood is not None:
            known = np.asarray(ood) <= self.ood.threshold
        else:
            known = conf >= self.threshold
        return [
            (self.labels[i] if ok else UNKNOWN, float(c))
            for i, c, ok in zip(idx.tolist(), conf.tolist(), known.tolist())
        ]


def load_bundle(path: str | os.PathLike | None = None, prefer_int8: bool = True,
                with_ood: bool = True) -> Bundle:
    """Load the bundle in directory ``path`` (default: the embedded default model).

    ``prefer_int8`` runs ``model.int8.tflite`` when present, else ``model.tflite``;
    ``with_ood=False`` leaves out the OOD part (``egw ood fit`` replaces it).
    Raises :class:`BundleError` naming the file and the problem.
    """
    d = Path(path) if path is not None else DEFAULT_BUNDLE_DIR
    if not d.is_dir():
        raise BundleError(f"{d}: model bundle directory not found")
    labels = _read_json(d / LABELS_FILE)
    if not (isinstance(labels, list) and labels and all(isinstance(s, str) for s in labels)):
        raise BundleError(f"{d / LABELS_FILE}: expected a non-empty JSON list of class names")
    card = _read_json(d / CARD_FILE)
    if not isinstance(card, dict):
        raise BundleError(f"{d / CARD_FILE}: expected a JSON object")
    try:
        threshold = float(card.get("threshold", 0.0))
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{d / CARD_FILE}: 'threshold' is not a number") from exc
    pp_path = d / PREPROCESS_FILE
    _check_file(pp_path)
    try:
        from classifier.preprocess import Preprocess

        preprocess = Preprocess.from_json(pp_path)
    except Exception as exc:
        if getattr(exc, "user_facing", False):
            raise BundleError(f"{pp_path}: {exc}") from exc
        raise BundleError(f"{pp_path}: cannot read preprocessing options ({exc})") from exc

    candidates = [INT8_MODEL, FLOAT_MODEL] if prefer_int8 else [FLOAT_MODEL, INT8_MODEL]
    model_file = next((d / c for c in candidates if (d / c).is_file()), None)
    if model_file is None:
        raise BundleError(f"{d / FLOAT_MODEL}: missing bundle file (no {INT8_MODEL} either)")
    _check_file(model_file)
    runner = _Runner(model_file)
    out_shape = tuple(int(v) for v in runner.out["shape"])
    if out_shape[-1] != len(labels):
        raise BundleError(
            f"{model_file}: model has {out_shape[-1]} outputs but {d / LABELS_FILE} lists "
            f"{len(labels)} classes"
        )
    return Bundle(
        path=d,
        labels=list(labels),
        preprocess=preprocess,
        threshold=threshold,
        card=card,
        model_file=model_file,
        _runner=runner,
        ood=load_scorer(d, card, _Runner, _check_file) if with_ood else None,
    )
