"""CART baseline (scikit-learn decision tree) of the DeepNFV paper, exportable to LiteRT.

The tree is trained with scikit-learn on the flattened inputs, then turned into a
Keras model whose registered layer :class:`DecisionTree` walks the tree with
tensor ops (gather the node's feature and threshold, compare, go left/right,
``depth`` times; leaves point to themselves) and returns the leaf's class
distribution. So the gateway runs CART through LiteRT like every other model.
"""
from __future__ import annotations

import numpy as np

from classifier.nn.common import flat_size, keras, tf

DEFAULTS = {"max_depth": 30, "min_samples_leaf": 1}


@keras.saving.register_keras_serializable(package="egw")
class DecisionTree(keras.layers.Layer):
    """Tensor walk of a fitted binary decision tree; input (batch, features) float."""

    def __init__(self, n_nodes: int, n_features: int, n_classes: int, depth: int, **kw):
        super().__init__(**kw)
        self.n_nodes = int(n_nodes)
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.depth = int(depth)
        self.feature = self.add_weight(name="feature", shape=(self.n_nodes,), dtype="int32",
                                       initializer="zeros", trainable=False)
        self.threshold = self.add_weight(name="threshold", shape=(self.n_nodes,), dtype="float32",
                                         initializer="zeros", trainable=False)
        self.left = self.add_weight(name="left", shape=(self.n_nodes,), dtype="int32",
                                    initializer="zeros", trainable=False)
        self.right = self.add_weight(name="right", shape=(self.n_nodes,), dtype="int32",
                                     initializer="zeros", trainable=False)
        self.value = self.add_weight(name="value", shape=(self.n_nodes, self.n_classes),
                                     dtype="float32", initializer="zeros", trainable=False)

    def call(self, x):
        n = tf.shape(x)[0]
        node = tf.zeros((n,), dtype=tf.int32)
        for _ in range(max(1, self.depth)):
            f = tf.gather(self.feature, node)
            t = tf.gather(self.threshold, node)
            xv = tf.gather(x, f, axis=1, batch_dims=1)
            node = tf.where(xv <= t, tf.gather(self.left, node), tf.gather(self.right, node))
        return tf.gather(self.value, node)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_classes)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(n_nodes=self.n_nodes, n_features=self.n_features, n_classes=self.n_classes,
                   depth=self.depth)
        return cfg


def fit_tree(X, y, n_classes: int, seed: int = 0, max_depth: int | None = 30,
             min_samples_leaf: int = 1, class_weight="balanced"):
    from sklearn.tree import DecisionTreeClassifier

    clf = DecisionTreeClassifier(random_state=seed, max_depth=max_depth,
                                 min_samples_leaf=min_samples_leaf, class_weight=class_weight)
    clf.fit(np.asarray(X, np.float32).reshape(len(X), -1), y)
    return clf


def tree_to_keras(clf, input_shape, n_classes: int) -> keras.Model:
    t = clf.tree_
    n = t.node_count
    left = t.children_left.copy()
    right = t.children_right.copy()
    leaf = left < 0
    idx = np.arange(n)
    left[leaf] = idx[leaf]
    right[leaf] = idx[leaf]
    feature = np.where(leaf, 0, t.feature).astype(np.int32)
    threshold = np.where(leaf, 0.0, t.threshold).astype(np.float32)
    value = np.zeros((n, n_classes), dtype=np.float32)
    v = t.value[:, 0, :]
    v = v / np.maximum(v.sum(1, keepdims=True), 1e-12)
    value[:, clf.classes_.astype(int)] = v
    inp = keras.Input(shape=tuple(input_shape), name="x")
    x = keras.layers.Flatten()(inp) if len(input_shape) > 1 else inp
    layer = DecisionTree(n, flat_size(input_shape), n_classes, int(t.max_depth), name="cart")
    out = layer(x)
    model = keras.Model(inp, out, name="cart")
    layer.set_weights([feature, threshold, left.astype(np.int32), right.astype(np.int32), value])
    return model


def build(input_shape, n_classes: int, X=None, y=None, seed: int = 0, **kw) -> keras.Model:
    """Fit a tree on (X, y) and return its Keras/LiteRT-exportable model."""
    if X is None:
        X = np.random.default_rng(seed).random((8 * n_classes, *input_shape), dtype=np.float32)
        y = np.arange(len(X)) % n_classes
    clf = fit_tree(X, y, n_classes, seed=seed, **kw)
    return tree_to_keras(clf, input_shape, n_classes)
