"""Random forest (scikit-learn) exported to LiteRT as tensor tree walks.

All trees are walked at once by the registered layer :class:`DecisionForest`:
the node index of every (sample, tree) pair advances ``depth`` times (gather
the node's feature and threshold, compare, go to ``node + 1`` -- scikit-learn
stores the left child right after its parent -- or to the right child). A leaf
has threshold -1 and points to itself on the right, so it stays put, and its
``feature`` slot holds the row of its class distribution in ``value``. The
output is the mean of the trees' leaf distributions, as in
``RandomForestClassifier.predict_proba``.

Inputs are compared in fixed point (``round(x * 255 * 1500)`` as int32; all
representation values are k/255 or length/1500) so that thresholds stay exact
integers in the int8 model too. Compact: 12 bytes per node and 4 x n_classes bytes per leaf (float model).
Inputs with an inter-arrival column (``kpackets``) can drop it (``drop_last_column``).
"""
from __future__ import annotations

import numpy as np

from classifier.nn.common import keras, tf

DEFAULTS = {"n_estimators": 30, "max_leaf_nodes": 256}
FIXED_SCALE = 255.0 * 1500.0


@keras.saving.register_keras_serializable(package="egw")
class DecisionForest(keras.layers.Layer):
    def __init__(self, n_trees: int, n_nodes: int, n_leaves: int, n_classes: int, depth: int,
                 roots=None, **kw):
        super().__init__(**kw)
        self.n_trees, self.n_nodes, self.n_leaves = int(n_trees), int(n_nodes), int(n_leaves)
        self.n_classes, self.depth = int(n_classes), int(depth)
        self.roots = [int(r) for r in (roots or [0] * self.n_trees)]
        w = dict(initializer="zeros", trainable=False)
        self.feature = self.add_weight(name="feature", shape=(self.n_nodes,), dtype="int32", **w)
        self.threshold = self.add_weight(name="threshold", shape=(self.n_nodes,), dtype="int32", **w)
        self.right = self.add_weight(name="right", shape=(self.n_nodes,), dtype="int32", **w)
        self.value = self.add_weight(name="value", shape=(self.n_leaves, self.n_classes),
                                     dtype="float32", **w)

    def call(self, x):
        # fixed point: every input value of the representations is k/255 or L/1500, so
        # x * 255 * 1500 is an integer and integer comparisons are exact, in the float
        # and in the int8 model alike (no threshold gets requantised)
        x = tf.cast(tf.round(x * FIXED_SCALE), tf.int32)
        n = tf.shape(x)[0]
        node = tf.tile(tf.constant(self.roots, tf.int32)[None, :], tf.stack([n, 1]))
        last = tf.shape(x)[1] - 1
        for _ in range(max(1, self.depth)):
            f = tf.minimum(tf.gather(self.feature, node), last)  # a leaf's slot holds its value row
            t = tf.gather(self.threshold, node)
            xv = tf.gather(x, f, axis=1, batch_dims=1)
            node = tf.where(xv <= t, node + 1, tf.gather(self.right, node))
        leaf = tf.gather(self.feature, node)
        return tf.reduce_mean(tf.gather(self.value, leaf), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_classes)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(n_trees=self.n_trees, n_nodes=self.n_nodes, n_leaves=self.n_leaves,
                   n_classes=self.n_classes, depth=self.depth, roots=self.roots)
        return cfg


@keras.saving.register_keras_serializable(package="egw")
class DropLastColumn(keras.layers.Layer):
    """(batch, rows, cols) -> (batch, rows * (cols - 1)): drops the last column, flattens."""

    def call(self, x):
        return tf.reshape(x[:, :, :-1], (tf.shape(x)[0], -1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] * (input_shape[2] - 1))


def features(X: np.ndarray, drop_last_column: bool) -> np.ndarray:
    X = np.asarray(X, np.float32)
    if drop_last_column:
        X = X[:, :, :-1]
    return X.reshape(len(X), -1)


def fit_forest(X, y, seed: int = 0, n_estimators: int = 30, max_leaf_nodes: int | None = 256,
               drop_last_column: bool = False, n_jobs: int = 1, class_weight=None):
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(n_estimators=n_estimators, max_leaf_nodes=max_leaf_nodes,
                                random_state=seed, n_jobs=n_jobs, class_weight=class_weight)
    rf.fit(features(X, drop_last_column), y)
    return rf


def _preorder(left, right) -> np.ndarray:
    """Node indices in depth-first pre-order (a left child directly follows its parent)."""
    out, stack = [], [0]
    while stack:
        i = stack.pop()
        out.append(i)
        if left[i] >= 0:
            stack.append(right[i])
            stack.append(left[i])
    return np.asarray(out, np.int64)


def forest_to_keras(rf, input_shape, n_classes: int, drop_last_column: bool = False) -> keras.Model:
    feats, thrs, rights, values, roots = [], [], [], [], []
    off = 0
    leaf_off = 0
    depth = 0
    for est in rf.estimators_:
        t = est.tree_
        n = t.node_count
        order = _preorder(t.children_left, t.children_right)  # new index -> old index
        new_of = np.empty(n, np.int64)
        new_of[order] = np.arange(n)
        left, right = t.children_left[order], t.children_right[order]
        is_leaf = left < 0
        internal = ~is_leaf
        assert (new_of[left[internal]] == np.where(internal)[0] + 1).all()
        leaf_rows = np.cumsum(is_leaf) - 1 + leaf_off
        f = np.where(is_leaf, leaf_rows, t.feature[order]).astype(np.int32)
        thr = np.where(is_leaf, -1, np.floor(t.threshold[order] * FIXED_SCALE)).astype(np.int32)
        r = np.where(is_leaf, np.arange(n), new_of[np.where(is_leaf, 0, right)]) + off
        v = t.value[order][is_leaf, 0, :]
        v = v / np.maximum(v.sum(1, keepdims=True), 1e-12)
        full = np.zeros((len(v), n_classes), np.float32)
        full[:, rf.classes_.astype(int)] = v
        feats.append(f)
        thrs.append(thr)
        rights.append(r.astype(np.int32))
        values.append(full)
        roots.append(off)
        off += n
        leaf_off += int(is_leaf.sum())
        depth = max(depth, int(t.max_depth))
    inp = keras.Input(shape=tuple(input_shape), name="x")
    if drop_last_column:
        x = DropLastColumn(name="drop_iat")(inp)
    else:
        x = keras.layers.Flatten()(inp) if len(input_shape) > 1 else inp
    layer = DecisionForest(len(roots), off, leaf_off, n_classes, depth, roots=roots, name="forest")
    out = layer(x)
    model = keras.Model(inp, out, name="forest")
    layer.set_weights([np.concatenate(feats), np.concatenate(thrs), np.concatenate(rights),
                       np.concatenate(values)])
    return model


def build(input_shape, n_classes: int, X=None, y=None, seed: int = 0, **kw) -> keras.Model:
    if X is None:
        X = np.random.default_rng(seed).random((8 * n_classes, *input_shape), dtype=np.float32)
        y = np.arange(len(X)) % n_classes
    drop = kw.pop("drop_last_column", False)
    rf = fit_forest(X, y, seed=seed, drop_last_column=drop, **kw)
    return forest_to_keras(rf, input_shape, n_classes, drop)




# ---- gradient-boosted trees ---------------------------------------------------------------
BOOSTED_DEFAULTS = {"max_iter": 100, "max_leaf_nodes": 15, "learning_rate": 0.1}


def fit_boosted(X, y, seed: int = 0, max_iter: int = 100, max_leaf_nodes: int = 15,
                learning_rate: float = 0.1, drop_last_column: bool = False):
    """scikit-learn's histogram gradient boosting (one tree per class and iteration)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    hgb = HistGradientBoostingClassifier(max_iter=max_iter, max_leaf_nodes=max_leaf_nodes,
                                         learning_rate=learning_rate, early_stopping=False,
                                         random_state=seed)
    hgb.fit(features(X, drop_last_column), y)
    return hgb


def out_of_fold_boosted(X, y, groups, n_classes: int, folds: int = 5, seed: int = 0,
                        drop_last_column: bool = False, log=None) -> np.ndarray:
    """Class probabilities (``n_classes`` columns: the dataset's labels, also those with no
    training row) of boosted trees for every row of (X, y), each from a model that did not
    see that row's session (``folds`` folds grouped by session): soft targets for
    distillation that carry the teacher's real uncertainty, not its memory of the row."""
    from sklearn.model_selection import GroupKFold

    K = int(n_classes)
    out = np.zeros((len(y), K), np.float32)
    for i, (tr, te) in enumerate(GroupKFold(n_splits=folds).split(X, y, groups)):
        m = fit_boosted(X[tr], y[tr], seed=seed, drop_last_column=drop_last_column,
                        **BOOSTED_DEFAULTS)
        p = m.predict_proba(features(X[te], drop_last_column))
        out[np.ix_(te, m.classes_)] = p
        if log:
            log(f"out-of-fold teacher: fold {i + 1}/{folds}")
    return out


def boosted_to_keras(hgb, input_shape, n_classes: int, drop_last_column: bool = False
                     ) -> keras.Model:
    """The boosted trees as one :class:`DecisionForest` walk, then a softmax.

    Each tree scores one class: its leaf rows hold ``n_trees * value`` in that class's
    column (the layer averages over trees, so the average is the boosting sum), and the
    first tree of each class also carries the class's baseline score. scikit-learn's
    predictor arrays are already in pre-order (left child = parent + 1); a split sends
    ``x <= num_threshold`` left, compared in the same fixed point as the forest."""
    trees = [(c_idx, p) for it in hgb._predictors for c_idx, p in enumerate(it)]
    n_trees = len(trees)
    classes = hgb.classes_.astype(int)
    baseline = np.asarray(hgb._baseline_prediction, np.float64).reshape(-1)
    if len(baseline) == 1 and len(classes) == 2:
        raise ValueError("binary boosting (one tree per iteration) is not supported; use forest")
    feats, thrs, rights, values, roots = [], [], [], [], []
    off = leaf_off = depth = 0
    seen: set[int] = set()
    for c_idx, pred in trees:
        nd = pred.nodes
        n = len(nd)
        is_leaf = nd["is_leaf"].astype(bool)
        internal = ~is_leaf
        assert (nd["left"][internal] == np.where(internal)[0] + 1).all(), "not in pre-order"
        if (nd["is_categorical"][internal]).any():
            raise ValueError("categorical splits are not supported")
        leaf_rows = np.cumsum(is_leaf) - 1 + leaf_off
        f = np.where(is_leaf, leaf_rows, nd["feature_idx"]).astype(np.int32)
        thr = np.where(is_leaf, -1, np.floor(nd["num_threshold"] * FIXED_SCALE)).astype(np.int32)
        r = np.where(is_leaf, np.arange(n), nd["right"]) + off
        v = np.zeros((int(is_leaf.sum()), n_classes), np.float64)
        col = int(classes[c_idx])
        v[:, col] = nd["value"][is_leaf] * n_trees
        if c_idx not in seen:
            v[:, col] += baseline[c_idx] * n_trees
            seen.add(c_idx)
        feats.append(f)
        thrs.append(thr)
        rights.append(r.astype(np.int32))
        values.append(v.astype(np.float32))
        roots.append(off)
        off += n
        leaf_off += int(is_leaf.sum())
        depth = max(depth, int(nd["depth"].max()))
    inp = keras.Input(shape=tuple(input_shape), name="x")
    if drop_last_column:
        x = DropLastColumn(name="drop_iat")(inp)
    else:
        x = keras.layers.Flatten()(inp) if len(input_shape) > 1 else inp
    layer = DecisionForest(n_trees, off, leaf_off, n_classes, depth, roots=roots, name="boosted")
    out = keras.layers.Softmax(name="softmax")(layer(x))
    model = keras.Model(inp, out, name="boosted")
    layer.set_weights([np.concatenate(feats), np.concatenate(thrs), np.concatenate(rights),
                       np.concatenate(values)])
    return model
