"""Small network over the first-k-packets representation (the embedded default model).

Input: ``kpackets`` rows (k, n_bytes + 3) = per packet its first n_bytes masked
bytes, its length, its direction and its inter-arrival time. The inter-arrival
column is dropped inside the model (``use_iat=False``, the default): the
training captures' timestamps are synthetic, so it carries nothing there and
would only be a distribution shift on live traffic.

Architecture: a per-packet encoder (a dense layer applied to every packet row:
bytes at fixed offsets from the packet start, plus length and direction), a
convolution across neighbouring packets, global max + average pooling over the
packets, one hidden dense layer, softmax. Adam, batch 64.
"""
from __future__ import annotations

from classifier.nn.common import keras

DEFAULTS = {"epochs": 60, "batch_size": 64, "learning_rate": 2e-3}


def build(input_shape, n_classes: int, learning_rate: float = 2e-3, width: int = 64,
          hidden: int = 64, dropout: float = 0.25, use_iat: bool = False) -> keras.Model:
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 2:
        raise ValueError(f"kpnet needs kpackets input (k, n_bytes + 3), got {shape}")
    inp = keras.Input(shape=shape, name="x")
    x = inp
    if not use_iat:
        # drop the last (inter-arrival) column with standard ops: transpose, crop, transpose
        x = keras.layers.Permute((2, 1))(x)
        x = keras.layers.Cropping1D((0, 1))(x)
        x = keras.layers.Permute((2, 1))(x)
    x = keras.layers.Dense(width, activation="relu", name="packet_enc")(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Conv1D(width, 3, padding="same", activation="relu", name="across_packets")(x)
    mx = keras.layers.GlobalMaxPooling1D()(x)
    av = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Concatenate()([mx, av])
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(hidden, activation="relu", name="fc")(x)
    out = keras.layers.Dense(n_classes, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="kpnet")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
