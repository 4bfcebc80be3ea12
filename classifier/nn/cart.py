"""CART baseline (scikit-learn decision tree) of the DeepNFV paper, exportable to LiteRT.

The tree is trained with scikit-learn on the flattened inputs, then turned into a
Keras model whose registered layer (:class:`classifier.nn.forest.DecisionForest`
with one tree) walks the tree with tensor ops (gather the node's feature and
threshold, compare, go left/right, ``depth`` times; leaves point to themselves)
and returns the leaf's class distribution. So the gateway runs CART through
LiteRT like every other model.
"""
from __future__ import annotations

import numpy as np

from classifier.nn.common import keras

DEFAULTS = {"max_depth": 30, "min_samples_leaf": 1}


def fit_tree(X, y, n_classes: int, seed: int = 0, max_depth: int | None = 30,
             min_samples_leaf: int = 1, class_weight="balanced"):
    from sklearn.tree import DecisionTreeClassifier

    clf = DecisionTreeClassifier(random_state=seed, max_depth=max_depth,
                                 min_samples_leaf=min_samples_leaf, class_weight=class_weight)
    clf.fit(np.asarray(X, np.float32).reshape(len(X), -1), y)
    return clf


def tree_to_keras(clf, input_shape, n_classes: int) -> keras.Model:
    """The fitted tree as a Keras model: a one-tree :class:`~classifier.nn.forest.DecisionForest`
    (tensor walk with exact fixed-point integer comparisons, also in the int8 model)."""
    from types import SimpleNamespace

    from classifier.nn.forest import forest_to_keras

    one = SimpleNamespace(estimators_=[clf], classes_=clf.classes_)
    return forest_to_keras(one, input_shape, n_classes)


def build(input_shape, n_classes: int, X=None, y=None, seed: int = 0, **kw) -> keras.Model:
    """Fit a tree on (X, y) and return its Keras/LiteRT-exportable model."""
    if X is None:
        X = np.random.default_rng(seed).random((8 * n_classes, *input_shape), dtype=np.float32)
        y = np.arange(len(X)) % n_classes
    clf = fit_tree(X, y, n_classes, seed=seed, **kw)
    return tree_to_keras(clf, input_shape, n_classes)
