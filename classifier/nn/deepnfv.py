"""DeepNFV's traffic-analysis CNN: 30x30 gray images, four convolutions, two dense layers, SGD.

A flat input of 900 values (image900) is reshaped to (30, 30, 1); in general the
input must be a perfect square of values or already (H, W[, 1]).
"""
from __future__ import annotations

import math

from classifier.nn.common import flat_size, keras

DEFAULTS = {"epochs": 30, "batch_size": 64, "learning_rate": 0.01}


def image_shape(input_shape) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        return shape  # type: ignore[return-value]
    if len(shape) == 2:
        return (shape[0], shape[1], 1)
    n = flat_size(shape)
    side = int(math.isqrt(n))
    if side * side != n:
        raise ValueError(f"DeepNFV needs a square image input, got {n} values")
    return (side, side, 1)


def build(input_shape, n_classes: int, learning_rate: float = 0.01, hidden: int = 128) -> keras.Model:
    inp = keras.Input(shape=tuple(input_shape), name="x")
    x = keras.layers.Reshape(image_shape(input_shape))(inp)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv4")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hidden, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(0.3)(x)
    out = keras.layers.Dense(n_classes, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="deepnfv")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
