"""``knn``: the literature's simple anchor, k nearest neighbours on the first packets' sizes
and directions.

Each session becomes the vector of its first k packets' signed sizes (length / 1500,
negative for server→client; 0 past the session's end), read from the ``kpackets``
columns, so no payload byte and no header field is used. The inter-arrival gaps
that the literature adds are left out: the training captures' timestamps are
synthetic (``docs/data.md``), so they would measure nothing there.

The whole model runs in LiteRT like every other family: the training vectors are
the layer's constant prototypes, the distances one matrix product, ``top_k`` picks
the neighbours and their one-hot labels are averaged into class probabilities.
"""
from __future__ import annotations

import numpy as np

from classifier.nn.common import keras

DEFAULTS = {"neighbours": 5}
FEATURES = "signed packet sizes of the first k packets (length/1500, negative server->client)"


def signed_sizes(X: np.ndarray) -> np.ndarray:
    """(n, k) signed sizes from kpackets rows (n, k, n_bytes + 3)."""
    n_bytes = X.shape[2] - 3
    return (X[:, :, n_bytes] * (1.0 - 2.0 * X[:, :, n_bytes + 1])).astype(np.float32)


@keras.saving.register_keras_serializable(package="egw")
class NearestNeighbours(keras.layers.Layer):
    """Class probabilities = label shares among the ``neighbours`` nearest prototypes."""

    def __init__(self, prototypes, labels_one_hot, neighbours: int = 5, **kw):
        super().__init__(**kw)
        self.p = np.asarray(prototypes, np.float32)
        self.l = np.asarray(labels_one_hot, np.float32)
        self.neighbours = int(min(neighbours, len(self.p)))

    def build(self, input_shape):
        self.protos = self.add_weight(shape=self.p.shape, initializer="zeros", trainable=False,
                                      name="prototypes")
        self.onehot = self.add_weight(shape=self.l.shape, initializer="zeros", trainable=False,
                                      name="labels")
        self.protos.assign(self.p)
        self.onehot.assign(self.l)

    def call(self, x):
        ops = keras.ops
        d = (ops.sum(x * x, axis=1, keepdims=True) - 2.0 * ops.matmul(x, ops.transpose(self.protos))
             + ops.sum(self.protos * self.protos, axis=1)[None, :])
        _, idx = ops.top_k(-d, k=self.neighbours)
        return ops.mean(ops.take(self.onehot, idx, axis=0), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.l.shape[1])


def build(X: np.ndarray, y: np.ndarray, n_classes: int, neighbours: int = 5) -> keras.Model:
    """A Keras model over kpackets input that answers like sklearn's KNeighborsClassifier
    (uniform weights, Euclidean) fitted on (signed_sizes(X), y)."""
    k, w = int(X.shape[1]), int(X.shape[2])
    n_bytes = w - 3
    inp = keras.Input(shape=(k, w), name="x")
    t = keras.layers.Permute((2, 1))(inp)                                         # (w, k)
    ln = keras.layers.Flatten()(keras.layers.Cropping1D((n_bytes, 2))(t))          # (k,)
    dr = keras.layers.Flatten()(keras.layers.Cropping1D((n_bytes + 1, 1))(t))      # (k,)
    # signed size = length * (1 - 2 * direction)
    sign = keras.layers.Rescaling(-2.0, offset=1.0)(dr)
    feats = keras.layers.Multiply()([ln, sign])
    out = NearestNeighbours(signed_sizes(X), np.eye(n_classes, dtype=np.float32)[y],
                            neighbours, name="neighbours")(feats)
    return keras.Model(inp, out, name="knn")
