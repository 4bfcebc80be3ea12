"""Helpers shared by the model families (imports TensorFlow: training side only)."""
from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import warnings
from typing import Any

import numpy as np


def tf_quiet() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def quiet_fds():
    """Silence C++ and Python chatter on stdout/stderr (file descriptors 1 and 2) for the
    duration, unless EGW_VERBOSE is set. Exceptions still propagate (and print after)."""
    if os.environ.get("EGW_VERBOSE"):
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [devnull]:
            os.close(fd)


tf_quiet()
# TensorFlow's C++ start-up logs INFO lines (oneDNN, CPU features) before absl reads
# TF_CPP_MIN_LOG_LEVEL, so the level cannot filter them: keep them off the terminal.
with quiet_fds():
    import keras  # noqa: E402
    import tensorflow as tf  # noqa: E402

if not os.environ.get("EGW_VERBOSE"):
    # Each new model (a NAS child, a family in a benchmark) traces its own predict function;
    # TensorFlow counts those traces across models and warns "N out of the last M calls ...
    # triggered tf.function retracing" although nothing is retraced needlessly. Its Python
    # logger is the source of those lines: warnings off, errors still shown.
    import logging as _logging
    tf.get_logger().setLevel(_logging.ERROR)


def set_seed(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy, TensorFlow and Keras; optionally ask TF for deterministic ops."""
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    if deterministic:
        try:
            tf.config.experimental.enable_op_determinism()
        except Exception:  # pragma: no cover - older TF
            pass


def flat_size(shape) -> int:
    return int(np.prod([int(d) for d in shape]))


# --------------------------------------------------------------------------- hardware figures


def _layer_flops(layer, in_shapes, out_shape) -> int:
    """Multiply-accumulates counted as 2 FLOPs; element-wise ops as 1 per element."""
    out_el = flat_size(out_shape[1:]) if out_shape is not None else 0
    name = type(layer).__name__
    if name in ("Conv1D", "Conv2D"):
        k = flat_size(layer.kernel_size)
        cin = int(in_shapes[0][-1])
        return 2 * out_el * k * cin // max(1, getattr(layer, "groups", 1)) + (
            out_el if layer.use_bias else 0
        )
    if name in ("Conv1DTranspose", "Conv2DTranspose"):
        k = flat_size(layer.kernel_size)
        in_el = flat_size(in_shapes[0][1:])
        return 2 * in_el * k * int(layer.filters) + (out_el if layer.use_bias else 0)
    if name in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return 2 * out_el * flat_size(layer.kernel_size)
    if name == "Dense":
        cin = int(in_shapes[0][-1])
        return 2 * out_el * cin + (out_el if layer.use_bias else 0)
    if name in ("MaxPooling1D", "AveragePooling1D", "MaxPooling2D", "AveragePooling2D"):
        return out_el * flat_size(layer.pool_size)
    if name.startswith("Global"):
        return flat_size(in_shapes[0][1:])
    if name == "BatchNormalization":
        return 2 * out_el
    if name in ("ReLU", "LeakyReLU", "Activation", "Softmax", "Add", "Concatenate", "Multiply"):
        return out_el
    if name in ("Reshape", "Flatten", "InputLayer", "Dropout", "Rescaling", "Permute"):
        return out_el if name == "Rescaling" else 0
    # custom layers: count one op per output element
    return out_el


def _shape_of(t) -> tuple:
    return tuple(t.shape)


def hardware_report(model, tflite_float: bytes | None = None, tflite_int8: bytes | None = None) -> dict:
    """Parameters, largest intermediate tensor, FLOPs, flash bytes and a RAM estimate.

    RAM estimate: the sequential model keeps at most one layer's input and output
    alive, so peak activation memory = max over layers of (input + output elements)
    times the element size (4 bytes float, 1 byte int8); weights stay in flash.
    """
    params = int(model.count_params())
    max_tensor = 0
    peak_pair = 0
    flops = 0
    for layer in model.layers:
        try:
            ins = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
            in_shapes = [_shape_of(t) for t in ins]
            out = layer.output
            outs = out if isinstance(out, (list, tuple)) else [out]
            out_shapes = [_shape_of(t) for t in outs]
        except Exception:
            continue
        out_el = sum(flat_size(s[1:]) for s in out_shapes)
        in_el = sum(flat_size(s[1:]) for s in in_shapes)
        max_tensor = max(max_tensor, out_el, in_el)
        peak_pair = max(peak_pair, out_el + in_el)
        if hasattr(layer, "layers") and type(layer).__name__ in ("Functional", "Sequential"):
            sub = hardware_report(layer)
            flops += sub["flops"]
            max_tensor = max(max_tensor, sub["max_tensor"])
            peak_pair = max(peak_pair, sub["_peak_pair"])
            continue
        flops += _layer_flops(layer, in_shapes, out_shapes[0])
    rep: dict[str, Any] = {
        "params": params,
        "max_tensor": int(max_tensor),
        "flops": int(flops),
        "ram_bytes_float": int(4 * peak_pair),
        "ram_bytes_int8": int(peak_pair),
        "_peak_pair": int(peak_pair),
    }
    if tflite_float is not None:
        rep["flash_bytes_float"] = len(tflite_float)
    if tflite_int8 is not None:
        rep["flash_bytes_int8"] = len(tflite_int8)
    return rep


def public_report(rep: dict) -> dict:
    return {k: v for k, v in rep.items() if not k.startswith("_")}


# --------------------------------------------------------------------------- progress


class TqdmProgress(keras.callbacks.Callback):
    """One tqdm bar per epoch (batches), epoch summary with losses/metrics."""

    def __init__(self, epochs: int, steps: int | None, enabled: bool = True):
        super().__init__()
        self.epochs = epochs
        self.steps = steps
        self.enabled = enabled
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", leave=False,
                        unit="batch", dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is not None:
            self.bar.update(1)
            if logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if True:  # one line per epoch, with or without the bar
            parts = " ".join(f"{k}={float(v):.4f}" for k, v in (logs or {}).items()
                             if isinstance(v, (int, float, np.floating)))
            print(f"epoch {epoch + 1}/{self.epochs} {parts}", flush=True)


def steps_per_epoch(n: int, batch: int) -> int:
    return max(1, math.ceil(n / batch))
