"""The supervised 1D-CNN the ByteSGAN paper compares against (its Figure 6).

Input: a packet byte vector (1480 values; any flat input is reshaped to (L, 1)).
Three blocks Conv1D(128, 5, stride 1, ReLU) + MaxPooling1D with pool sizes 5, 5
and 35, then two dense layers (hidden ReLU layer + softmax), RMSprop, batch 128.

Choice made here: the pooling windows also stride by their own size (Keras'
default). With the paper's stride 1 the flattened tensor would be about
1440 x 128 = 184k values and the hidden dense layer alone millions of weights;
striding makes the 35-wide last pool (almost) global, the flatten 128 wide and
the hidden dense layer (default 64 units) small enough to train on two cores.
"""
from __future__ import annotations

from classifier.nn.common import flat_size, keras

DEFAULTS = {"epochs": 20, "batch_size": 128, "hidden": 64, "learning_rate": 1e-3}


def build(input_shape, n_classes: int, hidden: int = 64, filters: int = 128,
          learning_rate: float = 1e-3, pools=(5, 5, 35)) -> keras.Model:
    length = flat_size(input_shape)
    inp = keras.Input(shape=tuple(input_shape), name="x")
    x = keras.layers.Reshape((length, 1))(inp)
    for i, p in enumerate(pools):
        x = keras.layers.Conv1D(filters, 5, strides=1, activation="relu", name=f"conv{i + 1}")(x)
        p = min(p, int(x.shape[1]))
        x = keras.layers.MaxPooling1D(pool_size=p, name=f"pool{i + 1}")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(hidden, activation="relu", name="fc1")(x)
    out = keras.layers.Dense(n_classes, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="bytesgan_cnn")
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
