"""``tinykp``: the tiny CNN over the first packets of a session, with a learned byte embedding.

Input: ``kpackets`` rows (k, n_bytes + 3) = per packet its first n_bytes masked bytes
(scaled /255), its length, its direction and its inter-arrival time (dropped: the
training captures' timestamps are synthetic).

Why an embedding: header and payload bytes are symbols (a TLS record type, a flag
set, a protocol version), not magnitudes. Scaled floats make "equals 0x17" a hard
function for a small network; a lookup table of 256 learned vectors makes it one
row. The bytes are recovered exactly from the scaled input (round(x*255)), so the
bundle's input stays the kpackets vector every other family reads.

Network (the defaults: about 40k parameters, 1.4 MFLOPs):

- ``ByteIndex`` + Embedding(256, ``emb``): (k, n, emb);
- per packet, two convolutions along the bytes (kernel 3, stride 2, ReLU): local
  patterns at every offset;
- per packet, a dense layer over the flattened positions (fields sit at fixed
  offsets from the packet start): one ``width``-vector per packet;
- concatenated with the packet's length and direction (through a dense layer of
  their own, ``meta_width``), a convolution across
  neighbouring packets (kernel 3), global max + average pooling over packets,
  dropout, softmax.

Training (``classifier.train``): Adam with cosine decay, class weights, label
smoothing, and two augmentations drawn per batch: *packet drop* (a random later
packet removed and the rest shifted up, as when the gateway or a capture misses one)
and *byte dropout* (random payload bytes set to 0). Optional distillation from a
tree teacher (``--teacher DIR``, a forest or boosted bundle: its LiteRT
probabilities on the training rows become soft targets).
"""
from __future__ import annotations

import numpy as np

from classifier.nn.common import keras

DEFAULTS = {"epochs": 120, "batch_size": 64, "learning_rate": 3e-3, "emb": 8, "width": 48,
            "conv1": 16, "conv2": 24, "meta_width": 8, "head": "pool", "dropout": 0.3,
            "label_smoothing": 0.05, "towers": 1,
            "packet_drop": 0.3, "byte_dropout": 0.05, "distill_alpha": 0.5}


#: the options of ``build`` (the rest of DEFAULTS are training options)
ARCH = ("emb", "width", "conv1", "conv2", "meta_width", "head", "dropout", "label_smoothing",
        "towers")


@keras.saving.register_keras_serializable(package="egw")
class ByteIndex(keras.layers.Layer):
    """Scaled bytes (x / 255, float) back to integer indices 0..255 for an Embedding."""

    def call(self, x):
        return keras.ops.cast(keras.ops.clip(keras.ops.round(x * 255.0), 0, 255), "int32")

    def compute_output_shape(self, input_shape):
        return input_shape


def build(input_shape, n_classes: int, learning_rate: float = DEFAULTS["learning_rate"],
          emb: int = DEFAULTS["emb"], width: int = DEFAULTS["width"],
          conv1: int = DEFAULTS["conv1"], conv2: int = DEFAULTS["conv2"],
          dropout: float = DEFAULTS["dropout"], steps: int | None = None,
          meta_width: int = DEFAULTS["meta_width"], head: str = DEFAULTS["head"],
          label_smoothing: float = DEFAULTS["label_smoothing"],
          towers: int = DEFAULTS["towers"]) -> keras.Model:
    """``towers`` > 1: that many independent networks of the same shape, trained together,
    their class probabilities averaged (an ensemble inside one model: one input, one
    output, one int8 file)."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 2 or shape[1] < 4:
        raise ValueError(f"tinykp needs kpackets input (k, n_bytes + 3), got {shape}")
    if head not in ("pool", "pool+flat"):
        raise ValueError(f"head must be 'pool' or 'pool+flat', not {head!r}")
    inp = keras.Input(shape=shape, name="x")
    arch = dict(emb=emb, width=width, conv1=conv1, conv2=conv2, dropout=dropout,
                meta_width=meta_width, head=head)
    if int(towers) <= 1:
        out = _tower(inp, shape, n_classes, "", **arch)
    else:
        out = keras.layers.Average(name="probs")(
            [_tower(inp, shape, n_classes, f"t{i}_", **arch) for i in range(int(towers))])
    model = keras.Model(inp, out, name="tinykp")
    lr = (keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.02)
          if steps else learning_rate)
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
                  metrics=["accuracy"])
    return model


def _tower(inp, shape, n_classes, prefix, *, emb, width, conv1, conv2, dropout, meta_width,
           head):
    """One network from the input to its class probabilities (names prefixed)."""
    k, n = shape[0], shape[1] - 3
    # bytes | length, direction | inter-arrival (dropped), with standard slicing layers
    t = keras.layers.Permute((2, 1))(inp)                                  # (n+3, k)
    byt = keras.layers.Permute((2, 1))(keras.layers.Cropping1D((0, 3))(t))  # (k, n)
    meta = keras.layers.Permute((2, 1))(keras.layers.Cropping1D((n, 1))(t))  # (k, 2)
    idx = ByteIndex(name=f"{prefix}byte_index")(byt)
    x = keras.layers.Embedding(256, emb, name=f"{prefix}byte_embedding")(idx)
    x = keras.layers.Conv2D(conv1, (1, 3), strides=(1, 2), padding="same", activation="relu",
                            name=f"{prefix}bytes_conv1")(x)
    x = keras.layers.Conv2D(conv2, (1, 3), strides=(1, 2), padding="same", activation="relu",
                            name=f"{prefix}bytes_conv2")(x)
    after = -(-(-(-n // 2)) // 2)    # two stride-2 'same' convolutions: ceil(ceil(n/2)/2)
    x = keras.layers.Reshape((k, after * conv2))(x)
    x = keras.layers.Dense(width, activation="relu", name=f"{prefix}packet_enc")(x)
    # length and direction through their own small layer: a Concatenate shares one int8
    # scale between its inputs and output, and with the raw input in it that scale would
    # reach back to the model's input and blur the bytes the embedding indexes
    meta = keras.layers.Dense(meta_width, activation="relu", name=f"{prefix}meta_enc")(meta)
    x = keras.layers.Concatenate()([x, meta])
    x = keras.layers.Dropout(dropout / 2)(x)
    x = keras.layers.Conv1D(width, 3, padding="same", activation="relu",
                            name=f"{prefix}across_packets")(x)
    pooled = [keras.layers.GlobalMaxPooling1D()(x), keras.layers.GlobalAveragePooling1D()(x)]
    if head == "pool+flat":      # also each packet in its place: the first ones say the most
        pooled.append(keras.layers.Flatten()(x))
    x = keras.layers.Concatenate()(pooled)
    x = keras.layers.Dropout(dropout)(x)
    return keras.layers.Dense(n_classes, activation="softmax", name=f"{prefix}probs")(x)


def augment(X: np.ndarray, rng: np.random.Generator, packet_drop: float, byte_dropout: float
            ) -> np.ndarray:
    """A copy of kpackets rows ``X`` (b, k, n+3) with packet drop and byte dropout."""
    X = X.copy()
    b, k, w = X.shape
    n = w - 3
    if packet_drop > 0 and k > 2:
        for i in np.flatnonzero(rng.random(b) < packet_drop):
            used = int(np.count_nonzero(X[i, :, :n].any(1)))
            if used > 2:                      # keep the first packet: it is the strongest
                j = int(rng.integers(1, used))
                X[i, j:k - 1] = X[i, j + 1:].copy()
                X[i, k - 1] = 0
    if byte_dropout > 0:
        drop = rng.random((b, k, n)) < byte_dropout
        X[:, :, :n][drop] = 0
    return X
