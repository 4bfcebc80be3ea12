"""Tiny 1D-CNN for session vectors and its hardware-aware evolutionary search (HW-NAS).

A network is a *genome*: a list of blocks, each
``{filters, kernel, stride, padding, bn, act, pool, pool_size, dropout}``
(Conv1D -> optional BatchNorm -> activation -> optional max/avg pooling ->
optional dropout), then a head (``gap``: global average pooling, or ``flatten``)
and a softmax dense layer.

The search (``search``) starts from a parent genome; every generation it makes
``population`` children by random mutation (insert, delete or modify a block),
drops children that break the hardware limits (parameters, largest intermediate
tensor, FLOPs), trains each on the training data with early stopping and
learning-rate reduction on plateau against a 20 % holdout (by session) of the
training rows, and the best child (holdout macro-F1) becomes the next parent.
Training a child is the pure function ``fitness(genome, settings, data)``; an
``Evaluator`` runs a generation's children in worker processes or as Ray tasks
(``--ray``). After each generation the search's state goes to a checkpoint file, from
which a restarted driver resumes. The best network seen is returned. ``generations`` and ``population`` make it run for minutes here or
days elsewhere.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field

import numpy as np

from classifier.nn.common import flat_size, hardware_report, keras

DEFAULTS = {"epochs": 40, "batch_size": 128, "learning_rate": 1e-3}

LIMITS = {"max_params": 50_000, "max_tensor": 25_000, "max_flops": 5_000_000}

FILTERS = [4, 8, 12, 16, 24, 32, 48, 64]
KERNELS = [3, 5, 7, 9]
STRIDES = [1, 2, 3, 4]
ACTS = ["relu", "relu6", "elu", "swish"]
POOLS = [None, "max", "avg"]
DROPOUTS = [0.0, 0.1, 0.2, 0.3]

# The fixed tiny network (`egw train --model tiny`), also the search's first parent.
TINY_DEFAULT = {
    "blocks": [
        {"filters": 16, "kernel": 7, "stride": 2, "padding": "same", "bn": True, "act": "relu",
         "pool": "max", "pool_size": 2, "dropout": 0.0},
        {"filters": 32, "kernel": 5, "stride": 2, "padding": "same", "bn": True, "act": "relu",
         "pool": "max", "pool_size": 2, "dropout": 0.1},
        {"filters": 32, "kernel": 3, "stride": 1, "padding": "same", "bn": True, "act": "relu",
         "pool": None, "pool_size": 2, "dropout": 0.1},
    ],
    "head": "gap",
}


def build(input_shape, n_classes: int, genome: dict | None = None, learning_rate: float = 1e-3,
          compile: bool = True) -> keras.Model:
    genome = genome or TINY_DEFAULT
    length = flat_size(input_shape)
    inp = keras.Input(shape=tuple(input_shape), name="x")
    x = keras.layers.Reshape((length, 1))(inp)
    for i, b in enumerate(genome["blocks"]):
        x = keras.layers.Conv1D(b["filters"], b["kernel"], strides=b["stride"],
                                padding=b["padding"], use_bias=not b["bn"], name=f"b{i}_conv")(x)
        if b["bn"]:
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"b{i}_bn")(x)
        x = keras.layers.Activation(b["act"], name=f"b{i}_act")(x)
        if b["pool"]:
            cls = keras.layers.MaxPooling1D if b["pool"] == "max" else keras.layers.AveragePooling1D
            x = cls(pool_size=b["pool_size"], name=f"b{i}_pool")(x)
        if b["dropout"]:
            x = keras.layers.Dropout(b["dropout"], name=f"b{i}_drop")(x)
    if genome.get("head", "gap") == "gap":
        x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    else:
        x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(n_classes, activation="softmax", name="probs")(x)
    model = keras.Model(inp, out, name="tiny_cnn")
    if compile:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _out_len(length: int, b: dict) -> int:
    if b["padding"] == "same":
        n = -(-length // b["stride"])
    else:
        n = (length - b["kernel"]) // b["stride"] + 1
    if n < 1:
        return 0
    if b["pool"]:
        if n < b["pool_size"]:
            return 0
        n = n // b["pool_size"]
    return n


def valid_shape(genome: dict, length: int) -> bool:
    """Every block leaves at least one step (no error from a too-small input)."""
    if not genome["blocks"]:
        return False
    n = length
    for b in genome["blocks"]:
        n = _out_len(n, b)
        if n < 1:
            return False
    return True


def check_limits(genome: dict, input_shape, n_classes: int, limits: dict | None = None):
    """Return (ok, hardware report or None, reason)."""
    lim = {**LIMITS, **(limits or {})}
    if not valid_shape(genome, flat_size(input_shape)):
        return False, None, "sequence shrinks to nothing"
    model = build(input_shape, n_classes, genome, compile=False)
    rep = hardware_report(model)
    if rep["params"] > lim["max_params"]:
        return False, rep, f"params {rep['params']} > {lim['max_params']}"
    if rep["max_tensor"] > lim["max_tensor"]:
        return False, rep, f"max tensor {rep['max_tensor']} > {lim['max_tensor']}"
    if rep["flops"] > lim["max_flops"]:
        return False, rep, f"FLOPs {rep['flops']} > {lim['max_flops']}"
    return True, rep, "ok"


def random_block(rng: np.random.Generator) -> dict:
    return {
        "filters": int(rng.choice(FILTERS)),
        "kernel": int(rng.choice(KERNELS)),
        "stride": int(rng.choice(STRIDES)),
        "padding": str(rng.choice(["same", "valid"])),
        "bn": bool(rng.random() < 0.7),
        "act": str(rng.choice(ACTS)),
        "pool": POOLS[int(rng.integers(len(POOLS)))],
        "pool_size": int(rng.choice([2, 3, 4])),
        "dropout": float(rng.choice(DROPOUTS)),
    }


def mutate(genome: dict, rng: np.random.Generator) -> tuple[dict, str]:
    """One random mutation: insert, delete or modify a block (or flip the head)."""
    g = copy.deepcopy(genome)
    blocks = g["blocks"]
    ops = ["insert", "modify", "modify"] + (["delete"] if len(blocks) > 1 else []) + ["head"]
    op = str(rng.choice(ops))
    if op == "insert":
        pos = int(rng.integers(len(blocks) + 1))
        blocks.insert(pos, random_block(rng))
        return g, f"insert block at {pos}"
    if op == "delete":
        pos = int(rng.integers(len(blocks)))
        del blocks[pos]
        return g, f"delete block {pos}"
    if op == "head":
        g["head"] = "flatten" if g.get("head", "gap") == "gap" else "gap"
        return g, f"head -> {g['head']}"
    pos = int(rng.integers(len(blocks)))
    key = str(rng.choice(list(blocks[pos].keys())))
    fresh = random_block(rng)
    blocks[pos][key] = fresh[key]
    return g, f"block {pos}: {key} -> {fresh[key]}"


@dataclass
class SearchResult:
    genome: dict
    model: object
    val_accuracy: float
    history: list = field(default_factory=list)  # one record per trained candidate
    seconds: float = 0.0
    val_macro_f1: float = 0.0


def _holdout(n: int, groups, rng: np.random.Generator, frac: float = 0.2):
    if groups is None:
        idx = rng.permutation(n)
        k = max(1, int(round(frac * n)))
        return idx[k:], idx[:k]
    uniq = np.unique(groups)
    val_groups = set(rng.permutation(uniq)[: max(1, int(round(frac * len(uniq))))].tolist())
    mask = np.array([g in val_groups for g in groups])
    return np.where(~mask)[0], np.where(mask)[0]


def train_candidate(genome, input_shape, n_classes, Xtr, ytr, Xva, yva, epochs: int,
                    batch_size: int, learning_rate: float, class_weight=None, patience: int = 4,
                    seed: int = 0):
    """Train one network; returns (model, holdout accuracy, holdout macro-F1, history)."""
    from classifier.metrics import macro_f1
    from classifier.nn import loop

    model = build(input_shape, n_classes, genome, learning_rate=learning_rate)
    cbs = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True,
                                      start_from_epoch=min(5, epochs // 3)),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 2),
                                          min_lr=1e-5),
    ]
    w = None if class_weight is None else np.array([class_weight[int(c)] for c in ytr], np.float32)
    hist = loop.fit(model, loop.Batches(Xtr, ytr, w, batch_size, seed), epochs,
                    validation=(Xva, yva), callbacks=cbs)
    pred = loop.predict(model, Xva).argmax(1)
    acc = float((pred == yva).mean()) if len(yva) else 0.0
    return model, acc, macro_f1(yva, pred, n_classes) if len(yva) else 0.0, hist


# ---- the search as a pure function genome -> fitness, run by worker processes ----------

_DATA: dict = {}


def _set_threads(threads: int = 1) -> None:
    """One TensorFlow thread per worker (workers share the machine's cores)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised (in-process use)
        pass


def _load_worker(data_path: str, threads: int = 1) -> None:
    """Worker start-up: the holdout split once, and one TensorFlow thread per worker."""
    _set_threads(threads)
    with np.load(data_path, allow_pickle=False) as z:
        _DATA.clear()
        _DATA.update({k: z[k] for k in z.files})


def fitness(genome: dict, settings: dict, data: dict | None = None) -> dict:
    """Train ``genome`` on the search's training part and score it on its holdout.

    Pure in its inputs: the genome, the settings (input shape, classes, epochs, batch size,
    learning rate, class weights, patience, seed) and the data (``Xtr, ytr, Xva, yva``;
    default: what the worker loaded). Returns ``{val_accuracy, val_macro_f1, epochs,
    seconds, weights}`` with the trained weights as numpy arrays, so any process (or a
    cluster node) can compute it and the caller can rebuild the network."""
    d = _DATA if data is None else data
    t = time.time()
    from classifier.nn.common import set_seed
    set_seed(int(settings.get("seed", 0)))
    cw = settings.get("class_weight")
    model, acc, f1, hist = train_candidate(
        genome, tuple(settings["input_shape"]), int(settings["n_classes"]), d["Xtr"], d["ytr"],
        d["Xva"], d["yva"], int(settings["epochs"]), int(settings["batch_size"]),
        float(settings["learning_rate"]), {int(k): v for k, v in cw.items()} if cw else None,
        int(settings.get("patience", 4)), int(settings.get("seed", 0)))
    return {"val_accuracy": acc, "val_macro_f1": f1, "epochs": len(hist.get("loss", [])),
            "seconds": round(time.time() - t, 1), "weights": model.get_weights()}


def _fitness_in_worker(args):
    genome, settings = args
    return fitness(genome, settings)


def _fitness_ray_task(genome: dict, settings: dict, data: dict) -> dict:
    """A Ray task (``--ray``): the same ``fitness``, the data from the object store."""
    _set_threads(1)
    return fitness(genome, settings, data)


class Evaluator:
    """Evaluates genomes with ``fitness``: in this process (``workers`` 1), in a pool of
    worker processes (spawned: TensorFlow is not fork-safe), each holding the data once,
    or, with ``ray`` (a cluster address or ``local``), as Ray tasks that share the data
    through the object store; a task whose worker dies is re-run by Ray."""

    def __init__(self, data: dict, workers: int = 1, ray: str | None = None):
        self.data, self.workers, self.pool, self._tmp = data, max(1, int(workers)), None, None
        self.ray = None
        if ray:
            from classifier.cluster import RayPool

            self.ray = RayPool(ray)
            self._data_ref = self.ray.put(data)
        elif self.workers > 1:
            import multiprocessing as mp
            import os
            import tempfile
            from concurrent.futures import ProcessPoolExecutor

            fd, self._tmp = tempfile.mkstemp(suffix=".npz", prefix="egw-nas-")
            os.close(fd)
            np.savez(self._tmp, **data)
            self.pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                            initializer=_load_worker, initargs=(self._tmp,))

    def map(self, genomes: list[dict], settings: dict) -> list[dict]:
        if self.ray is not None:
            n = len(genomes)
            return self.ray.map(_fitness_ray_task, genomes, [settings] * n, [self._data_ref] * n)
        if self.pool is None:
            return [fitness(g, settings, self.data) for g in genomes]
        return list(self.pool.map(_fitness_in_worker, [(g, settings) for g in genomes]))

    def close(self) -> None:
        if self.ray is not None:
            self.ray.close()
            self.ray = None
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        if self._tmp:
            import os
            os.unlink(self._tmp)
            self._tmp = None


class Checkpoint:
    """The search's state after each generation in one ``.npz``, replaced atomically: the
    history, the generation done, the random generator's state, the parent and the best
    network (its weights as arrays). A driver started again with the same search (settings,
    limits, population, first parent and data: the ``key``) resumes after the last
    generation done; more ``generations`` extend a finished search."""

    FORMAT = "egw-nas-checkpoint/1"

    def __init__(self, path, key: dict):
        from pathlib import Path

        self.path = Path(path)
        self.key = json.loads(json.dumps(key, sort_keys=True))

    def load(self, log=print) -> tuple[dict, list] | None:
        if not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as z:
                state = json.loads(str(z["state"]))
                weights = [z[f"w{i}"] for i in range(int(state["n_weights"]))]
        except (OSError, ValueError, KeyError) as exc:
            log(f"nas: {self.path}: unreadable checkpoint ({exc}): starting afresh")
            return None
        if state.get("format") != self.FORMAT or state.get("key") != self.key:
            log(f"nas: {self.path} holds another search (settings, limits or data differ): "
                "starting afresh")
            return None
        return state, weights

    def save(self, state: dict, weights: list) -> None:
        import os

        doc = {**state, "format": self.FORMAT, "key": self.key, "n_weights": len(weights)}
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, state=np.array(json.dumps(doc, default=float)),
                 **{f"w{i}": w for i, w in enumerate(weights)})
        os.replace(tmp, self.path)


def _digest(data: dict) -> str:
    import hashlib

    h = hashlib.sha256()
    for k in sorted(data):
        h.update(k.encode())
        h.update(np.ascontiguousarray(data[k]).tobytes())
    return h.hexdigest()


def search(X, y, input_shape, n_classes: int, generations: int = 3, population: int = 3,
           epochs: int = 15, batch_size: int = 128, learning_rate: float = 1e-3, seed: int = 0,
           limits: dict | None = None, groups=None, class_weight=None, parent: dict | None = None,
           log=print, patience: int = 4, workers: int = 1, ray: str | None = None,
           checkpoint=None) -> SearchResult:
    """Constrained evolutionary search; returns the best network found (by holdout macro-F1).
    Each generation's children are evaluated together (``workers`` processes, or Ray tasks
    with ``ray``). ``checkpoint``: a file written after each generation, from which a
    restarted search resumes (see :class:`Checkpoint`)."""
    t0 = time.time()
    rng = np.random.default_rng(seed)
    tr, va = _holdout(len(y), groups, rng)
    data = {"Xtr": X[tr], "ytr": y[tr], "Xva": X[va], "yva": y[va]}
    settings = {"input_shape": list(input_shape), "n_classes": n_classes, "epochs": epochs,
                "batch_size": batch_size, "learning_rate": learning_rate, "patience": patience,
                "seed": seed, "class_weight": {int(k): float(v) for k, v in (class_weight or {}).items()}}
    parent = copy.deepcopy(parent or TINY_DEFAULT)
    ok, rep, why = check_limits(parent, input_shape, n_classes, limits)
    if not ok:
        raise ValueError(f"the first parent breaks the hardware limits: {why}")
    ckpt = None if checkpoint is None else Checkpoint(checkpoint, {
        "settings": settings, "population": population, "limits": {**LIMITS, **(limits or {})},
        "first_parent": parent, "data": _digest(data)})
    saved = ckpt.load(log) if ckpt else None

    def save(gen: int) -> None:
        if ckpt:
            ckpt.save({"generation": gen, "rng": rng.bit_generator.state, "parent": parent,
                       "history": history, "best_f1": best[0], "best_genome": best[1],
                       "best_result": {k: v for k, v in best[2].items() if k != "weights"}},
                      best[2]["weights"])

    ev = Evaluator(data, workers, ray)
    try:
        if saved:
            state, weights = saved
            history, parent = state["history"], state["parent"]
            rng.bit_generator.state = state["rng"]
            best = (state["best_f1"], state["best_genome"], {**state["best_result"], "weights": weights})
            start = int(state["generation"]) + 1
            log(f"nas: resuming from {ckpt.path}: generation {start - 1} done, "
                f"{len(history)} candidates trained, best val_macro_f1={best[0]:.4f}")
        else:
            res = ev.map([parent], settings)[0]
            history = [{"generation": 0, "child": 0, "mutation": "initial parent", "genome": parent,
                        **{k: v for k, v in res.items() if k != "weights"}, **rep}]
            log(f"nas: generation 0 parent val_macro_f1={res['val_macro_f1']:.4f} "
                f"params={rep['params']} flops={rep['flops']} ({res['seconds']} s)")
            best = (res["val_macro_f1"], parent, res)
            start = 1
            save(0)
        for gen in range(start, generations + 1):
            kids = []
            for c in range(population):
                for _attempt in range(100):
                    child, what = mutate(parent, rng)
                    ok, rep, why = check_limits(child, input_shape, n_classes, limits)
                    if ok:
                        kids.append((c, child, what, rep))
                        break
            results = ev.map([k[1] for k in kids], settings)
            scored = []
            for (c, child, what, rep), res in zip(kids, results):
                history.append({"generation": gen, "child": c, "mutation": what, "genome": child,
                                **{k: v for k, v in res.items() if k != "weights"}, **rep})
                log(f"nas: generation {gen} child {c} ({what}) val_macro_f1={res['val_macro_f1']:.4f} "
                    f"params={rep['params']} max_tensor={rep['max_tensor']} flops={rep['flops']} "
                    f"({res['seconds']} s)")
                scored.append((res["val_macro_f1"], child, res))
            if scored:
                scored.sort(key=lambda t: -t[0])
                parent = scored[0][1]  # the best child becomes the parent
                if scored[0][0] > best[0]:
                    best = scored[0]
            save(gen)
    finally:
        ev.close()
    f1, genome, res = best
    model = build(input_shape, n_classes, genome, learning_rate=learning_rate)
    model.set_weights(res["weights"])
    out = SearchResult(genome, model, res["val_accuracy"], history, time.time() - t0)
    out.val_macro_f1 = f1
    return out


def genome_json(genome: dict) -> str:
    return json.dumps(genome, sort_keys=True)
