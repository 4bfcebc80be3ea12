"""The training loop of the Keras families: ``train_on_batch`` over numpy batches.

Why not ``model.fit``: Keras feeds ``fit`` through ``tf.data``, and with op
determinism on (``set_seed``: runs are reproducible) TensorFlow 2.21's tf.data
rewrites its parallel map into a sequential one, copying an attribute the
sequential op does not define; every epoch then logs "NodeDef mentions attribute
use_unbounded_threadpool ..." at ERROR level from C++. Batches built here never
touch tf.data, so there is nothing to rewrite and nothing to silence.

The Keras callbacks work unchanged (``CallbackList``): checkpoints, early
stopping, learning-rate reduction, CSV logging, the progress bar. A wall-clock
budget (``max_seconds``) stops training after the epoch in which it runs out,
and the card records that it did.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from classifier.nn.common import keras


class Batches:
    """Shuffled mini-batches ``(x, y, sample_weight)`` of numpy arrays; ``transform`` (e.g.
    augmentation) is applied to each batch's x with the loop's generator."""

    def __init__(self, X, Y, weights=None, batch_size: int = 64, seed: int = 0,
                 transform: Callable | None = None):
        self.X, self.Y = X, Y
        self.w = np.ones(len(X), np.float32) if weights is None else np.asarray(weights, np.float32)
        self.bs = batch_size
        self.rng = np.random.default_rng(seed)
        self.transform = transform
        self.order = self.rng.permutation(len(X))

    def __len__(self) -> int:
        return max(1, -(-len(self.X) // self.bs))

    def __getitem__(self, i: int):
        idx = np.sort(self.order[i * self.bs:(i + 1) * self.bs])
        x = self.X[idx]
        if self.transform is not None:
            x = self.transform(x, self.rng)
        return x, self.Y[idx], self.w[idx]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.X))


def evaluate(model, X, Y, batch_size: int = 512) -> dict[str, float]:
    """Mean loss and metrics of ``model`` on (X, Y), batch by batch, without tf.data."""
    tot: dict[str, float] = {}
    n = 0
    for i in range(0, len(X), batch_size):
        xb, yb = X[i:i + batch_size], Y[i:i + batch_size]
        logs = model.test_on_batch(xb, yb, return_dict=True)
        for k, v in logs.items():
            tot[k] = tot.get(k, 0.0) + float(v) * len(xb)
        n += len(xb)
    return {k: v / max(1, n) for k, v in tot.items()}


def predict(model, X, batch_size: int = 512) -> np.ndarray:
    """``model`` outputs on X, batch by batch, without tf.data. Every batch has the same
    shape (the last one padded with zeros, its padding cut from the output): Keras traces
    its predict function once per input shape, so a model is traced once, not once per
    size of what it is asked about (validation, test, a NAS child's holdout)."""
    if not len(X):
        return np.zeros((0, int(model.output_shape[-1])), np.float32)
    out = []
    for i in range(0, len(X), batch_size):
        chunk = X[i:i + batch_size]
        n = len(chunk)
        if n < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - n, *chunk.shape[1:]),
                                                    chunk.dtype)])
        out.append(np.asarray(model.predict_on_batch(chunk))[:n])
    return np.concatenate(out)


def out_of_budget(t_start: float, max_seconds: float | None, epoch: int, epochs: int) -> bool:
    """After epoch ``epoch`` (0-based) of ``epochs``: has the wall-clock budget run out with
    epochs still to go? (Every training loop stops on this and records ``budget_exhausted``.)"""
    return max_seconds is not None and time.time() - t_start > max_seconds and epoch + 1 < epochs


def fit(model, batches: Batches, epochs: int, validation=None, callbacks=(),
        max_seconds: float | None = None) -> dict[str, list[float]]:
    """Train ``model`` for up to ``epochs`` epochs; ``validation`` = (X, Y) or None.
    Returns the history (per-epoch logs, like ``History.history``) with a
    ``budget_exhausted`` entry when ``max_seconds`` stopped it."""
    cbs = keras.callbacks.CallbackList(list(callbacks), add_history=False, add_progbar=False,
                                       model=model, epochs=epochs, steps=len(batches))
    history: dict[str, list[float]] = {}
    model.stop_training = False
    t0 = time.time()
    cbs.on_train_begin()
    for epoch in range(epochs):
        cbs.on_epoch_begin(epoch)
        sums: dict[str, float] = {}
        seen = 0
        for i in range(len(batches)):
            x, y, w = batches[i]
            cbs.on_train_batch_begin(i)
            logs = model.train_on_batch(x, y, sample_weight=w, return_dict=True)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(x)
            seen += len(x)
            cbs.on_train_batch_end(i, {k: float(v) for k, v in logs.items()})
        batches.on_epoch_end()
        logs = {k: v / max(1, seen) for k, v in sums.items()}
        if validation is not None and len(validation[0]):
            logs.update({f"val_{k}": v for k, v in evaluate(model, *validation).items()})
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        cbs.on_epoch_end(epoch, logs)
        for k, v in logs.items():
            history.setdefault(k, []).append(float(v))
        if model.stop_training:
            break
        if out_of_budget(t0, max_seconds, epoch, epochs):
            history["budget_exhausted"] = [float(epoch + 1)]
            break
    cbs.on_train_end()
    return history
