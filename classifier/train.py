"""`egw train`: train one model family on a dataset .npz and write a model bundle.

Training side only (imports TensorFlow). Every bundle is scored through LiteRT
(float and int8) on the dataset's test split, per session, with the same code
as `egw evaluate`.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from classifier.dataerrors import DatasetError

MODELS = ("bytesgan", "cnn", "tiny", "tinykp", "nas", "deepnfv", "cart", "kpnet", "knn", "forest",
          "boosted")
TREE_MODELS = ("forest", "cart", "boosted")

# Representations each family accepts (None = any).
ACCEPTS = {
    "bytesgan": ("packet1480",),
    "cnn": ("packet1480", "session784"),
    "tiny": ("session784", "packet1480"),
    "nas": ("session784", "packet1480"),
    "deepnfv": ("image900",),
    "cart": None,
    "kpnet": ("kpackets",),
    "tinykp": ("kpackets",),
    "knn": ("kpackets",),
    "forest": None,
    "boosted": None,
}


#: ``--teacher`` value: boosted trees trained inside, out-of-fold (grouped by session)
OOF_TEACHER = "oof-boosted"


class TrainError(Exception):
    user_facing = True


def select_labelled(y: np.ndarray, n_per_class: int | None, seed: int) -> np.ndarray:
    """Indices of at most ``n_per_class`` samples of each class (seeded); all if None."""
    if not n_per_class:
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(y):
        idx = np.where(y == c)[0]
        keep.append(rng.choice(idx, min(n_per_class, len(idx)), replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, int)


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    counts = np.bincount(y, minlength=n_classes).astype(float)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = len(y) / (present.sum() * counts[present])
    return {i: float(w[i]) if present[i] else 1.0 for i in range(n_classes)}


def _val_split(ds, seed: int):
    """Train/val index arrays; when the file has no val rows, hold out 10 % of train sessions."""
    tr = np.where(ds.split == 0)[0]
    va = np.where(ds.split == 1)[0]
    if len(va) == 0 and len(tr):
        rng = np.random.default_rng(seed)
        sess = np.unique(ds.session[tr])
        held = set(rng.permutation(sess)[: max(1, len(sess) // 10)].tolist())
        m = np.array([s in held for s in ds.session[tr]])
        tr, va = tr[~m], tr[m]
    return tr, va


def latency_ms(bundle, sample: np.ndarray, runs: int = 300) -> float:
    """Median single-sample LiteRT latency (ms) of ``bundle`` on ``sample``."""
    x = sample[None].astype(np.float32)
    for _ in range(20):
        bundle.predict(x)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        bundle.predict(x)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1000)


def score_bundle(out_dir, X, y, session, labels, prefer_int8: bool):
    """LiteRT probabilities per session as the gateway decides (first row of a session for
    per-packet representations): (probs, y, session ids, bundle, mean-vote (probs, y))."""
    from classifier.bundle import load_bundle
    from classifier.metrics import by_session, per_session

    b = load_bundle(out_dir, prefer_int8=prefer_int8)
    p = b.predict(X) if len(X) else np.zeros((0, len(labels)), np.float32)
    ps, ys, ss = per_session(p, y, session, b.preprocess.per_packet)
    pv, yv, _ = by_session(p, y, session)
    return ps, ys, ss, b, (pv, yv)


def train(model: str, data: str, out: str, labeled_per_class: int | None = None,
          epochs: int | None = None, seed: int = 0, batch_size: int | None = None,
          progress: bool = True, unknown_rate: float = 0.02, generations: int = 3,
          population: int = 3, max_params: int = 50_000, max_flops: int = 5_000_000,
          max_tensor: int = 25_000, steps_per_epoch: int | None = None, patience: int = 8,
          trees: int | None = None, max_leaves: int | None = None, note: str | None = None,
          command: str | None = None, log=print, max_seconds: float | None = None,
          teacher: str | None = None, workers: int = 1, neighbours: int | None = None,
          ray: str | None = None, score_test: bool = True) -> dict:
    """Train ``model`` on dataset ``data``; write the bundle to ``out``; return its card.

    ``score_test=False`` (``--no-test``): the test split is not scored (nor printed, nor
    plotted): for the candidates of a selection made on validation; the chosen one's
    test figure is then read once with ``egw evaluate``. The card says so."""
    from classifier.dataset import load_dataset
    from classifier.metrics import calibrate_threshold, open_set, report

    if model not in MODELS:
        raise TrainError(f"unknown model {model!r} (one of {', '.join(MODELS)})")
    if ray and model != "nas":
        raise TrainError(f"--ray: only the architecture search (--model nas) runs on Ray, not {model}")
    ds = load_dataset(data)
    rep = ds.preprocess.repr
    if ACCEPTS[model] is not None and rep not in ACCEPTS[model]:
        raise TrainError(f"{data}: model {model} needs a {' or '.join(ACCEPTS[model])} dataset, "
                         f"this one is {rep} (build one with `egw dataset build --repr ...`)")
    tr, va = _val_split(ds, seed)
    te = np.where(ds.split == 2)[0]
    if len(tr) == 0:
        raise DatasetError(f"{data}: no training rows (split == 0)")
    labels = ds.labels
    K = len(labels)
    shape = tuple(ds.X.shape[1:])
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if model not in TREE_MODELS:
        (out_dir / "checkpoints").mkdir(exist_ok=True)

    from classifier.nn.common import TqdmProgress, hardware_report, keras, public_report, set_seed

    set_seed(seed)
    lab = select_labelled(ds.y[tr], labeled_per_class, seed)
    tr_lab = tr[lab]
    tr_unlab = np.setdiff1d(tr, tr_lab)
    Xl, yl = ds.X[tr_lab], ds.y[tr_lab]
    Xv, yv = ds.X[va], ds.y[va]
    cw = class_weights(yl, K)
    log(f"train {model}: {len(tr_lab)} labelled training rows"
        + (f" (+{len(tr_unlab)} unlabelled)" if model == "bytesgan" and len(tr_unlab) else "")
        + f", {len(va)} val, {len(te)} test; {K} classes; input {shape}")

    t0 = time.time()
    history: dict = {}
    loss_keys = None
    loss_title = "Training losses"
    extra: dict = {}
    allow_fallback = False
    save_keras = True
    ckpt = out_dir / "checkpoints" / "best.keras"

    def fit_keras(m, defaults, Y=None, transform=None, schedule=False):
        from classifier.nn import loop

        ep = epochs or defaults["epochs"]
        bs = batch_size or defaults["batch_size"]
        batches = loop.Batches(Xl, yl if Y is None else Y, np.array([cw[c] for c in yl], np.float32),
                               bs, seed, transform)
        val = (Xv, yv if Y is None else _one_hot(yv, K)) if len(va) else None
        cbs = []
        if val is not None:
            cbs.append(keras.callbacks.ModelCheckpoint(str(ckpt), monitor="val_loss",
                                                       save_best_only=True))
            if not schedule:   # a learning-rate schedule (tinykp's cosine decay) runs its budget
                cbs += [
                    # batch-norm statistics settle over the first epochs: no early stop before 5
                    keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                                  restore_best_weights=True,
                                                  start_from_epoch=min(5, ep // 3)),
                    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                      patience=max(2, patience // 2), min_lr=1e-5)]
        cbs += [keras.callbacks.CSVLogger(str(out_dir / "checkpoints" / "history.csv")),
                TqdmProgress(ep, len(batches), enabled=progress)]
        h = loop.fit(m, batches, ep, validation=val, callbacks=cbs, max_seconds=max_seconds)
        return h, ep, bs

    if model == "bytesgan":
        from classifier.nn import bytesgan

        d = bytesgan.DEFAULTS
        ep = epochs or d["epochs"]
        bs = batch_size or d["batch_size"]
        gan = bytesgan.ByteSGAN(shape, K, learning_rate=d["learning_rate"], seed=seed)
        history = gan.fit(Xl, yl, ds.X[tr_unlab] if len(tr_unlab) else None, epochs=ep,
                          batch_size=bs, X_val=Xv, y_val=yv, seed=seed, progress=progress,
                          steps_per_epoch=steps_per_epoch, checkpoint=str(ckpt), log=log,
                          max_seconds=max_seconds)
        net = gan.classifier
        gan.gen.save(out_dir / "generator.keras")
        gan.discriminator.save(out_dir / "discriminator.keras")
        loss_keys = ["d_adv_loss", "g_adv_loss", "g_fm_loss", "d_sup_loss"]
        loss_title = "ByteSGAN adversarial losses (D: real+fake, G: -log D(G(z)), feature matching)"
        extra = {"labelled_rows": int(len(tr_lab)), "unlabelled_rows": int(len(tr_unlab)),
                 "optimizer": "Adam(2e-4, beta_1=0.5)", "batch_size": bs, "epochs": ep,
                 "epochs_run": len(history.get("d_sup_loss", []))}
    elif model in ("cnn", "tiny", "deepnfv", "kpnet"):
        from classifier.nn import cnn, deepnfv, kpnet, tiny_nas

        mod = {"cnn": cnn, "tiny": tiny_nas, "deepnfv": deepnfv, "kpnet": kpnet}[model]
        net = mod.build(shape, K, learning_rate=mod.DEFAULTS["learning_rate"])
        history, ep, bs = fit_keras(net, mod.DEFAULTS)
        extra = {"optimizer": type(net.optimizer).__name__, "batch_size": bs, "epochs_max": ep,
                 "epochs_run": len(history.get("loss", []))}
        if model == "cnn":
            extra["hidden_dense"] = 64
        if model == "tiny":
            extra["genome"] = tiny_nas.TINY_DEFAULT
    elif model == "tinykp":
        from classifier.nn import tinykp

        d = tinykp.DEFAULTS
        ep = epochs or d["epochs"]
        bs = batch_size or d["batch_size"]
        Y = _one_hot(yl, K)
        distill = None
        if teacher:
            a = d["distill_alpha"]
            if teacher == OOF_TEACHER:
                from classifier.nn import forest
                soft = forest.out_of_fold_boosted(Xl, yl, ds.session[tr_lab], K, seed=seed,
                                                  drop_last_column=True, log=log)
                distill = {"teacher": OOF_TEACHER, "alpha": a, "folds": 5,
                           "teacher_options": dict(forest.BOOSTED_DEFAULTS)}
            else:
                soft, teacher_card = _teacher_probs(teacher, Xl, labels, ds.preprocess)
                distill = {"teacher": str(teacher), "alpha": a,
                           "teacher_command": teacher_card.get("command")}
            Y = (1 - a) * Y + a * soft
            distill["teacher_train_agreement"] = float((soft.argmax(1) == yl).mean())
        net = tinykp.build(shape, K, learning_rate=d["learning_rate"], steps=ep * -(-len(Xl) // bs),
                           **{k: d[k] for k in tinykp.ARCH})

        def transform(x, rng):
            return tinykp.augment(x, rng, d["packet_drop"], d["byte_dropout"])

        history, ep, bs = fit_keras(net, d, Y=Y, transform=transform, schedule=True)
        extra = {"optimizer": "Adam, cosine decay", "batch_size": bs, "epochs_max": ep,
                 "epochs_run": len(history.get("loss", [])),
                 "options": {k: v for k, v in d.items() if k not in ("epochs", "batch_size")},
                 "augmentation": {"packet_drop": d["packet_drop"], "byte_dropout": d["byte_dropout"]},
                 "distillation": distill}
    elif model == "knn":
        from classifier.nn import knn

        kn = neighbours or knn.DEFAULTS["neighbours"]
        net = knn.build(Xl, yl, K, neighbours=kn)
        allow_fallback = True
        save_keras = False
        extra = {"neighbours": kn, "prototypes": int(len(Xl)), "metric": "euclidean",
                 "features": knn.FEATURES}
    elif model == "nas":
        from classifier.nn import tiny_nas

        d = tiny_nas.DEFAULTS
        res = tiny_nas.search(
            Xl, yl, shape, K, generations=generations, population=population,
            epochs=epochs or 15, batch_size=batch_size or d["batch_size"],
            learning_rate=d["learning_rate"], seed=seed,
            limits={"max_params": max_params, "max_flops": max_flops, "max_tensor": max_tensor},
            groups=ds.session[tr_lab], class_weight=cw, log=log, patience=min(patience, 4),
            workers=workers, ray=ray, checkpoint=out_dir / "nas_checkpoint.npz")
        net = res.model
        (out_dir / "nas_history.json").write_text(json.dumps(res.history, indent=1))
        history = {"val_macro_f1": [r["val_macro_f1"] for r in res.history],
                   "val_accuracy": [r["val_accuracy"] for r in res.history]}
        loss_keys = ["val_macro_f1", "val_accuracy"]
        loss_title = "HW-NAS: holdout macro-F1 and accuracy of each trained candidate (x = candidate)"
        extra = {"genome": res.genome, "search_seconds": res.seconds, "generations": generations,
                 "population": population, "candidates": len(res.history),
                 "limits": {"max_params": max_params, "max_flops": max_flops,
                            "max_tensor": max_tensor},
                 "holdout_accuracy": res.val_accuracy, "holdout_macro_f1": res.val_macro_f1,
                 "workers": workers, "ray": ray, "epochs_per_child": epochs or 15}
    elif model == "cart":
        from classifier.nn import cart

        clf = cart.fit_tree(Xl, yl, K, seed=seed, max_depth=cart.DEFAULTS["max_depth"])
        net = cart.tree_to_keras(clf, shape, K)
        allow_fallback = True  # tree walking is integer gathers: int8 in/out, int32 inside
        save_keras = False
        extra = {"tree_nodes": int(clf.tree_.node_count), "tree_depth": int(clf.tree_.max_depth),
                 "leaves": int(clf.get_n_leaves()), "criterion": "gini",
                 "class_weight": "balanced"}
    elif model == "boosted":
        from classifier.nn import forest

        trees = trees or forest.BOOSTED_DEFAULTS["max_iter"]
        max_leaves = max_leaves or forest.BOOSTED_DEFAULTS["max_leaf_nodes"]
        drop = rep == "kpackets"  # the inter-arrival column: synthetic in the training captures
        hgb = forest.fit_boosted(Xl, yl, seed=seed, max_iter=trees, max_leaf_nodes=max_leaves,
                                 learning_rate=forest.BOOSTED_DEFAULTS["learning_rate"],
                                 drop_last_column=drop)
        net = forest.boosted_to_keras(hgb, shape, K, drop)
        allow_fallback = True
        save_keras = False  # the weights are the tree tables; model.keras would double the size
        preds = [p for it in hgb._predictors for p in it]
        extra = {"iterations": trees, "trees": len(preds), "max_leaf_nodes": max_leaves,
                 "learning_rate": forest.BOOSTED_DEFAULTS["learning_rate"],
                 "leaves": int(sum(p.nodes["is_leaf"].sum() for p in preds)),
                 "nodes": int(sum(len(p.nodes) for p in preds)),
                 "depth": int(max(p.nodes["depth"].max() for p in preds)),
                 "dropped_inter_arrival_column": drop, "loss": "log_loss"}
    elif model == "forest":
        from classifier.nn import forest

        trees = trees or 30
        max_leaves = max_leaves or 256
        drop = rep == "kpackets"  # the inter-arrival column: synthetic in the training captures
        rf = forest.fit_forest(Xl, yl, seed=seed, n_estimators=trees, max_leaf_nodes=max_leaves,
                               drop_last_column=drop)
        net = forest.forest_to_keras(rf, shape, K, drop)
        allow_fallback = True
        save_keras = False  # the weights are the tree tables; model.keras would double the size
        extra = {"trees": trees, "max_leaf_nodes": max_leaves,
                 "leaves": int(sum(e.tree_.n_leaves for e in rf.estimators_)),
                 "nodes": int(sum(e.tree_.node_count for e in rf.estimators_)),
                 "depth": int(max(e.tree_.max_depth for e in rf.estimators_)),
                 "dropped_inter_arrival_column": drop, "criterion": "gini"}
    train_s = time.time() - t0

    # ---- export, threshold, LiteRT scoring ------------------------------------------
    from classifier.export import bundle_from_keras, write_json

    calib = Xl if len(Xl) else ds.X[tr]
    hw = hardware_report(net)
    if model in TREE_MODELS:
        # a tree walk: per tree and level one gather of feature/threshold/child, one compare
        n_trees = extra.get("trees", 1)
        depth = extra.get("depth", extra.get("tree_depth", 1))
        hw["flops"] = int(n_trees * depth * 4 + n_trees * K)
        hw["params_note"] = "tree table entries (feature, threshold, child per node; class distribution per leaf)"
    if model == "knn":
        # distances to every prototype (one matrix product + norms), then top-k
        n_proto, k_feat = len(Xl), shape[0]
        hw["flops"] = int(2 * n_proto * k_feat + 3 * n_proto)
        hw["params_note"] = "prototype table (training sessions x features) and their one-hot labels"
    card = {
        "model": model,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "seed": seed,
        "labels": labels,
        "data": {"path": str(data), "representation": rep,
                 "manifest": {k: ds.manifest.get(k) for k in ("input", "taxonomy", "options", "argv",
                                                              "version", "counts") if k in ds.manifest},
                 "rows": {"train_labelled": int(len(tr_lab)), "train_unlabelled": int(len(tr_unlab)),
                          "val": int(len(va)), "test": int(len(te))},
                 "sessions": {"train": int(len(np.unique(ds.session[tr]))),
                              "val": int(len(np.unique(ds.session[va]))),
                              "test": int(len(np.unique(ds.session[te])))},
                 "labeled_per_class": labeled_per_class},
        "training": {"seconds": round(train_s, 1), "max_seconds": max_seconds,
                     "budget_exhausted": bool(history.get("budget_exhausted")), **extra},
        "sizes": public_report(hw),
        "environment": {"python": platform.python_version(), "tensorflow": _tf_version(),
                        "keras": keras.__version__},
    }
    if note:
        card["note"] = note
    # k-NN distances do not survive int8 activations (the neighbours change): float only
    int8 = model != "knn"
    if not int8:
        card["int8_note"] = "no model.int8.tflite: distances need float; the int8 figures are the float model's"
    bundle_from_keras(net, out_dir, labels, ds.preprocess, calib, threshold=0.0, card=card,
                      allow_float_fallback=allow_fallback, save_keras=save_keras, int8=int8)

    metrics: dict = {}
    te_scored = te if score_test else te[:0]
    for kind, pi in (("float", False), ("int8", True)):
        pv, yvs, _, b, _ = score_bundle(out_dir, Xv, yv, ds.session[va], labels, pi)
        pt, yts, _, _, (pvote, yvote) = score_bundle(out_dir, ds.X[te_scored], ds.y[te_scored],
                                                     ds.session[te_scored], labels, pi)
        metrics[kind] = {"test": report(yts, pt.argmax(1), labels) if len(yts) else None,
                         "val": report(yvs, pv.argmax(1), labels) if len(yvs) else None,
                         "_pv": pv, "_pt": pt, "_b": b}
        if ds.preprocess.per_packet and len(yvote):
            p_rows = b.predict(ds.X[te_scored])
            metrics[kind]["test_session_vote"] = report(yvote, pvote.argmax(1), labels)
            metrics[kind]["test_per_packet"] = report(ds.y[te_scored], p_rows.argmax(1), labels)
    # threshold: calibrated on validation sessions with the model the gateway runs (int8)
    thr = calibrate_threshold(metrics["int8"]["_pv"], unknown_rate)
    pf, pq = metrics["float"]["_pt"], metrics["int8"]["_pt"]
    agree = float((pf.argmax(1) == pq.argmax(1)).mean()) if len(pf) else None
    sample = (ds.X[te_scored[0]] if len(te_scored) else ds.X[tr[0]])
    lat = {kind: round(latency_ms(metrics[kind]["_b"], sample), 4) for kind in ("float", "int8")}
    card["threshold"] = thr
    card["open_set"] = {"unknown_rate_target": unknown_rate, "calibrated_on": "val sessions (int8)",
                        "test_int8": open_set(pq, thr) if len(pq) else None,
                        "val_int8": open_set(metrics["int8"]["_pv"], thr)}
    card["metrics"] = {
        "scored_per": ("session, on its first usable packet as the gateway does (also: "
                       "test_session_vote = mean over the session's packets, test_per_packet)")
        if ds.preprocess.per_packet else "session",
        "test_sessions": int(len(pq)),
        "float": {k: v for k, v in metrics["float"].items() if not k.startswith("_")},
        "int8": {k: v for k, v in metrics["int8"].items() if not k.startswith("_")},
        "int8_float_agreement": agree,
    }
    card["latency_ms_per_sample"] = {**lat, "note": "LiteRT, 1 thread, batch 1, median"}
    card["protocol"] = {
        "selection": "training options, early stopping and the open-set threshold use the "
                     "validation split only",
        "test_reads": ("the test split is scored once, after training, for this card's figures"
                       if score_test else "the test split is not read (--no-test): a candidate "
                       "of a selection on validation; `egw evaluate --split test` reads it once "
                       "for the chosen one"),
        "split": "session-disjoint (dataset manifest options), sessions with identical vectors "
                 "kept on one side"}
    card["sizes"].update({"flash_bytes_float": (out_dir / "model.tflite").stat().st_size,
                          "flash_bytes_int8": (out_dir / ("model.int8.tflite" if int8 else
                                                          "model.tflite")).stat().st_size})
    card["sizes"]["ram_estimate_note"] = ("peak activations of one layer (input + output) x 4 B "
                                          "(float) or 1 B (int8); weights in flash")
    card["history"] = history
    from classifier import plots

    card["plots"] = plots.write_all(out_dir, labels, card["metrics"]["int8"]["test"], history,
                                    loss_keys, loss_title)
    write_json(out_dir / "card.json", card)
    if (ds.split == 1).any() and (ds.split == 0).any():
        # the OOD part (no tuning sources here: `egw ood fit --tune` refits it with them)
        from classifier.ood_fit import fit as fit_ood

        card["ood"] = fit_ood(out_dir, data, seed=seed, log=log)
    return card


def _one_hot(y: np.ndarray, K: int) -> np.ndarray:
    return np.eye(K, dtype=np.float32)[y]


def _teacher_probs(teacher: str, X: np.ndarray, labels: list[str], preprocess
                   ) -> tuple[np.ndarray, dict]:
    """Soft targets: a bundle's float LiteRT probabilities on ``X`` (same labels and
    preprocessing as the student's dataset, checked), and the bundle's card."""
    from classifier.bundle import load_bundle

    b = load_bundle(teacher, prefer_int8=False)
    if list(b.labels) != list(labels):
        raise TrainError(f"--teacher {teacher}: its labels {b.labels} differ from the dataset's {labels}")
    if b.preprocess.to_dict() != preprocess.to_dict():
        raise TrainError(f"--teacher {teacher}: its preprocess.json differs from the dataset's")
    return b.predict(X).astype(np.float32), b.card


def _tf_version():
    try:
        import tensorflow as tf

        return tf.__version__
    except Exception:  # pragma: no cover
        return None


def summary(card: dict) -> str:
    m = card["metrics"]
    lines = [f"bundle: model {card['model']}, {card['sizes']['params']} params, "
             f"{card['sizes']['flops']} FLOPs, max tensor {card['sizes']['max_tensor']}, "
             f"flash {card['sizes']['flash_bytes_float']} B float / {card['sizes']['flash_bytes_int8']} B int8, "
             f"RAM ~{card['sizes']['ram_bytes_float']} B float / {card['sizes']['ram_bytes_int8']} B int8"]
    for kind in ("float", "int8"):
        t = m[kind]["test"]
        if t:
            lines.append(f"  test ({kind}, LiteRT): {t['n']} sessions, accuracy {t['accuracy']:.4f}, "
                         f"macro-F1 {t['macro_f1']:.4f}")
    if not m["int8"]["test"]:
        lines.append("  test split not read (--no-test); validation: "
                     + ", ".join(f"{kind} macro-F1 {m[kind]['val']['macro_f1']:.4f}"
                                 for kind in ("float", "int8") if m[kind]["val"]))
    unknown = (card["open_set"]["test_int8"] or card["open_set"]["val_int8"])["unknown"]
    which = "test" if card["open_set"]["test_int8"] else "val"
    lines.append(f"  int8/float agreement {m['int8_float_agreement']}; threshold {card['threshold']:.4f} "
                 f"({unknown} {which} sessions -> unknown); "
                 f"latency {card['latency_ms_per_sample']['float']} ms float, "
                 f"{card['latency_ms_per_sample']['int8']} ms int8; trained in {card['training']['seconds']} s")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print("use `egw train`", file=sys.stderr)
