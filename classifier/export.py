"""Export a trained Keras model as a model bundle (float and full-int8 LiteRT models).

Training side only (imports TensorFlow). The bundle layout is documented in
docs/models.md and read by :mod:`classifier.bundle`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from classifier.bundle import (CARD_FILE, FLOAT_MODEL, INT8_MODEL, LABELS_FILE,
                               PREPROCESS_FILE)
from classifier.nn.common import keras, quiet_fds, tf


def _converter(model):
    # from_keras_model works with Keras 3 and keeps the batch dimension dynamic.
    return tf.lite.TFLiteConverter.from_keras_model(model)


def to_tflite(model) -> bytes:
    """Float32 LiteRT flatbuffer of a Keras model."""
    conv = _converter(model)
    with quiet_fds():
        return conv.convert()


def to_tflite_int8(model, calibration: np.ndarray, max_samples: int = 500, seed: int = 0,
                   allow_float_fallback: bool = False) -> bytes:
    """Full-integer (int8 weights, activations, input and output) LiteRT model.

    ``calibration``: training vectors for the activation ranges (a random
    ``max_samples`` of them are used). With ``allow_float_fallback`` ops without
    an int8 kernel stay float inside (input/output still int8).
    """
    calib = np.asarray(calibration, dtype=np.float32)
    if len(calib) > max_samples:
        idx = np.random.default_rng(seed).choice(len(calib), max_samples, replace=False)
        calib = calib[np.sort(idx)]

    def rep():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if allow_float_fallback:
        ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
    conv.target_spec.supported_ops = ops
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with quiet_fds():
        return conv.convert()


def write_preprocess(preprocess: Any, path: Path) -> None:
    if hasattr(preprocess, "to_json"):
        preprocess.to_json(path)
    else:
        Path(path).write_text(json.dumps(preprocess, indent=2, sort_keys=True) + "\n")


def write_json(path: Path, obj: Any) -> None:
    def default(o):
        if isinstance(o, (np.integer,)):
            return int(o)
        if isinstance(o, (np.floating,)):
            return float(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
        return str(o)  # paths, dtypes and other plain values: their text

    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=default) + "\n")
    os.replace(tmp, path)


def bundle_from_keras(model, out_dir, labels: list[str], preprocess: Any, calibration: np.ndarray,
                      threshold: float = 0.0, card: dict | None = None, save_keras: bool = True,
                      int8: bool = True, allow_float_fallback: bool = False) -> dict:
    """Write a bundle directory from a Keras classifier with a softmax output.

    Writes ``model.keras`` (if ``save_keras``), ``model.tflite``,
    ``model.int8.tflite`` (calibrated on ``calibration``), ``labels.json``,
    ``preprocess.json`` and ``card.json`` (``card`` plus ``threshold`` and the
    flash sizes). Returns the card written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if save_keras:
        model.save(out / "model.keras")
    flt = to_tflite(model)
    (out / FLOAT_MODEL).write_bytes(flt)
    q = None
    if int8:
        q = to_tflite_int8(model, calibration, allow_float_fallback=allow_float_fallback)
        (out / INT8_MODEL).write_bytes(q)
    elif (out / INT8_MODEL).exists():
        (out / INT8_MODEL).unlink()
    write_json(out / LABELS_FILE, list(labels))
    write_preprocess(preprocess, out / PREPROCESS_FILE)
    card = dict(card or {})
    card["threshold"] = float(threshold)
    sizes = card.setdefault("sizes", {})
    sizes["flash_bytes_float"] = len(flt)
    if q is not None:
        sizes["flash_bytes_int8"] = len(q)
    write_json(out / CARD_FILE, card)
    return card


def update_card(out_dir, **fields) -> dict:
    path = Path(out_dir) / CARD_FILE
    card = json.loads(path.read_text()) if path.exists() else {}
    card.update(fields)
    write_json(path, card)
    return card


def load_keras(path):
    """Load a saved ``model.keras`` (custom layers registered on import of the model modules)."""
    import classifier.nn.bytesgan  # noqa: F401  (registers RealProbability)
    import classifier.nn.knn  # noqa: F401  (registers NearestNeighbours)
    import classifier.nn.tinykp  # noqa: F401  (registers ByteIndex)

    return keras.models.load_model(path)
