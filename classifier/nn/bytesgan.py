"""ByteSGAN: semi-supervised GAN on 1480-byte packet vectors (reshaped to 20x74x1).

Discriminator: three 3x3 convolutions with stride 2 (no pooling), LeakyReLU(0.2),
flatten, a fully connected layer (the feature-matching layer), K class logits.
Supervised head: softmax(logits). Unsupervised head: D(x) = Z / (Z + 1) with
Z = sum_k exp(logit_k), the registered custom layer :class:`RealProbability`
(computed stably as sigmoid(logsumexp(logits))).

Generator: 100-d uniform[-1, 1] noise -> dense -> reshape (10, 37, C) -> 4x4
stride-2 transposed convolution + LeakyReLU -> 7x7 convolution with tanh ->
20x74x1, mapped from [-1, 1] to the data's [0, 1] range and flattened to the
discriminator's input shape.

Losses (Salimans et al.): cross-entropy on labelled samples; unsupervised
real loss -log D(x) on all real samples (labelled and unlabelled both fed as
real) and fake loss -log(1 - D(G(z))); the generator minimises feature matching
(squared distance of the mean fully-connected activations on real and generated
batches). Adam 2e-4 (beta_1 0.5), batch 256, one D step then one G step.
"""
from __future__ import annotations

import math
import time

import numpy as np

from classifier.nn.common import flat_size, keras, tf
from classifier.nn import loop

DEFAULTS = {"epochs": 10, "batch_size": 256, "learning_rate": 2e-4}
NOISE_DIM = 100
IMAGE = (20, 74, 1)


@keras.saving.register_keras_serializable(package="egw")
class RealProbability(keras.layers.Layer):
    """D(x) = Z / (Z + 1), Z = sum(exp(logits)); returns shape (batch, 1)."""

    def call(self, logits):
        lse = tf.reduce_logsumexp(logits, axis=-1, keepdims=True)
        return tf.sigmoid(lse)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def build_discriminator(input_shape, n_classes: int, filters=(32, 64, 64), hidden: int = 128):
    """Returns the discriminator with outputs [logits, features]."""
    if flat_size(input_shape) != flat_size(IMAGE):
        raise ValueError(f"ByteSGAN needs 1480-value packet vectors, got shape {tuple(input_shape)}")
    inp = keras.Input(shape=tuple(input_shape), name="x")
    x = keras.layers.Reshape(IMAGE)(inp)
    for i, f in enumerate(filters):
        x = keras.layers.Conv2D(f, 3, strides=2, padding="same", name=f"d_conv{i + 1}")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.3)(x)
    feat = keras.layers.Dense(hidden, name="d_fc")(x)
    feat = keras.layers.LeakyReLU(negative_slope=0.2, name="d_features")(feat)
    logits = keras.layers.Dense(n_classes, name="logits")(feat)
    return keras.Model(inp, [logits, feat], name="discriminator")


def heads(disc: keras.Model):
    """(classifier with softmax output, unsupervised model with D(x), both sharing weights)."""
    inp = disc.input
    logits, _ = disc(inp)
    probs = keras.layers.Softmax(name="probs")(logits)
    real = RealProbability(name="d_real")(logits)
    classifier = keras.Model(inp, probs, name="bytesgan_classifier")
    both = keras.Model(inp, [probs, real], name="bytesgan_discriminator")
    return classifier, both


def build_generator(output_shape, channels: int = 32):
    z = keras.Input(shape=(NOISE_DIM,), name="z")
    x = keras.layers.Dense(10 * 37 * channels, name="g_fc")(z)
    x = keras.layers.LeakyReLU(negative_slope=0.2)(x)
    x = keras.layers.Reshape((10, 37, channels))(x)
    x = keras.layers.Conv2DTranspose(channels, 4, strides=2, padding="same", name="g_deconv")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.2)(x)
    x = keras.layers.Conv2D(1, 7, padding="same", activation="tanh", name="g_conv")(x)
    x = keras.layers.Rescaling(0.5, offset=0.5)(x)  # tanh [-1, 1] -> data range [0, 1]
    out = keras.layers.Reshape(tuple(output_shape))(x)
    return keras.Model(z, out, name="generator")


def build(input_shape, n_classes: int, learning_rate: float = 2e-4):
    """Supervised classifier (softmax) model of a fresh ByteSGAN, compiled (for export tests)."""
    disc = build_discriminator(input_shape, n_classes)
    clf, _ = heads(disc)
    clf.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return clf


class ByteSGAN:
    def __init__(self, input_shape, n_classes: int, learning_rate: float = 2e-4, seed: int = 0):
        self.input_shape = tuple(int(d) for d in input_shape)
        self.n_classes = n_classes
        self.disc = build_discriminator(self.input_shape, n_classes)
        self.gen = build_generator(self.input_shape)
        self.classifier, self.discriminator = heads(self.disc)
        self.d_opt = keras.optimizers.Adam(learning_rate, beta_1=0.5)
        self.g_opt = keras.optimizers.Adam(learning_rate, beta_1=0.5)
        self.seed_gen = tf.random.Generator.from_seed(seed)
        # Grappler's remapper fuses the discriminator's Conv+BiasAdd with its LeakyReLU and
        # then fails on the LeakyReluGrad of the tape ("remapper failed: ... fanout
        # LeakyReluGrad exist for missing node BiasAdd", logged at ERROR on every trace);
        # the graph runs unfused either way, so the pass is switched off instead of failing.
        tf.config.optimizer.set_experimental_options({"remapping": False})
        self._d_step = tf.function(self._d_step_impl)
        self._g_step = tf.function(self._g_step_impl)

    def noise(self, n):
        return self.seed_gen.uniform((n, NOISE_DIM), -1.0, 1.0)

    @staticmethod
    def losses(logits_lab, y_lab, logits_real, logits_fake):
        """(supervised CE, unsupervised real loss, unsupervised fake loss)."""
        ce = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y_lab, logits=logits_lab))
        lse_r = tf.reduce_logsumexp(logits_real, axis=-1)
        lse_f = tf.reduce_logsumexp(logits_fake, axis=-1)
        real = tf.reduce_mean(tf.nn.softplus(lse_r) - lse_r)   # -log D(x)
        fake = tf.reduce_mean(tf.nn.softplus(lse_f))           # -log(1 - D(G(z)))
        return ce, real, fake

    def _d_step_impl(self, x_lab, y_lab, x_real, z):
        x_fake = self.gen(z, training=True)
        with tf.GradientTape() as tape:
            lg_lab, _ = self.disc(x_lab, training=True)
            lg_real, _ = self.disc(x_real, training=True)
            lg_fake, _ = self.disc(x_fake, training=True)
            ce, real, fake = self.losses(lg_lab, y_lab, lg_real, lg_fake)
            loss = ce + real + fake
        grads = tape.gradient(loss, self.disc.trainable_variables)
        self.d_opt.apply_gradients(zip(grads, self.disc.trainable_variables))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(lg_lab, -1, output_type=y_lab.dtype), y_lab),
                                     tf.float32))
        return ce, real + fake, acc

    def _g_step_impl(self, x_real, z):
        _, f_real = self.disc(x_real, training=False)
        with tf.GradientTape() as tape:
            x_fake = self.gen(z, training=True)
            lg_fake, f_fake = self.disc(x_fake, training=False)
            fm = tf.reduce_mean(tf.square(tf.reduce_mean(f_real, 0) - tf.reduce_mean(f_fake, 0)))
        grads = tape.gradient(fm, self.gen.trainable_variables)
        self.g_opt.apply_gradients(zip(grads, self.gen.trainable_variables))
        lse_f = tf.reduce_logsumexp(lg_fake, axis=-1)
        g_adv = tf.reduce_mean(tf.nn.softplus(lse_f) - lse_f)  # -log D(G(z)), logged only
        return fm, g_adv

    def fit(self, X_lab, y_lab, X_unlab=None, epochs: int = 10, batch_size: int = 256,
            X_val=None, y_val=None, seed: int = 0, progress: bool = True, steps_per_epoch=None,
            checkpoint=None, log=print, max_seconds: float | None = None):
        """Alternate D and G steps; returns a per-epoch history dict. ``max_seconds``: stop
        after the epoch in which the wall-clock budget runs out (``budget_exhausted``)."""
        rng = np.random.default_rng(seed)
        X_lab = np.asarray(X_lab, np.float32)
        y_lab = np.asarray(y_lab, np.int64)
        X_real = X_lab if X_unlab is None or len(X_unlab) == 0 else np.concatenate(
            [X_lab, np.asarray(X_unlab, np.float32)])
        n_real = len(X_real)
        b_lab = min(batch_size, len(X_lab))
        b_real = min(batch_size, n_real)
        steps = steps_per_epoch or max(1, math.ceil(n_real / batch_size))
        hist = {k: [] for k in ("d_sup_loss", "d_adv_loss", "g_fm_loss", "g_adv_loss", "d_sup_acc",
                                "val_accuracy", "val_loss", "seconds")}
        t_start = time.time()
        for epoch in range(epochs):
            t0 = time.time()
            perm = rng.permutation(n_real)
            acc_sum = np.zeros(5)
            bar = None
            if progress:
                from tqdm.auto import tqdm
                bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{epochs}", leave=False, unit="step",
                           dynamic_ncols=True)
            for s in range(steps):
                li = rng.integers(0, len(X_lab), b_lab)
                start = (s * b_real) % n_real
                ri = perm[start:start + b_real]
                if len(ri) < b_real:
                    ri = np.concatenate([ri, perm[: b_real - len(ri)]])
                ce, adv, acc = self._d_step(tf.constant(X_lab[li]), tf.constant(y_lab[li]),
                                            tf.constant(X_real[ri]), self.noise(b_real))
                ri2 = rng.integers(0, n_real, b_real)
                fm, g_adv = self._g_step(tf.constant(X_real[ri2]), self.noise(b_real))
                acc_sum += [float(ce), float(adv), float(fm), float(g_adv), float(acc)]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(d_adv=f"{float(adv):.3f}", g=f"{float(g_adv):.3f}")
            if bar is not None:
                bar.close()
            m = acc_sum / steps
            for k, v in zip(("d_sup_loss", "d_adv_loss", "g_fm_loss", "g_adv_loss", "d_sup_acc"), m):
                hist[k].append(float(v))
            if X_val is not None and len(X_val):
                p = loop.predict(self.classifier, np.asarray(X_val, np.float32))
                yv = np.asarray(y_val)
                hist["val_accuracy"].append(float((p.argmax(1) == yv).mean()))
                hist["val_loss"].append(float(-np.mean(np.log(p[np.arange(len(yv)), yv] + 1e-8))))
            hist["seconds"].append(time.time() - t0)
            if checkpoint:
                self.classifier.save(checkpoint)
            log(f"epoch {epoch + 1}/{epochs} d_sup={m[0]:.4f} d_adv={m[1]:.4f} g_fm={m[2]:.4f} "
                f"g_adv={m[3]:.4f} sup_acc={m[4]:.4f}"
                + (f" val_acc={hist['val_accuracy'][-1]:.4f}" if hist["val_accuracy"] else ""))
            if loop.out_of_budget(t_start, max_seconds, epoch, epochs):
                hist["budget_exhausted"] = [float(epoch + 1)]
                break
        return hist
