"""``egw evaluate`` for a device bundle on device captures (iot-sentinel layout).

One answer per capture file, as the gateway decides (``classifier.devices``): the mean
probability over the capture's windows (up to ``windows`` windows of ``k`` usable
packets of the device with the MAC in its folder's ``_iotdevice-mac.txt``); also per
window. Device types come from the bundle (the folder → type map it was trained with;
a folder it does not know counts under its own name, i.e. out of distribution when the
bundle has no such label). Pairs of types confused in at least ``pair_threshold`` of a
type's captures are listed as *indistinguishable* rather than left in the average.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from classifier.bundle import Bundle, BundleError, load_bundle
from classifier.metrics import format_report, report


def device_options(bundle: Bundle) -> dict | None:
    """The ``device`` options of a device bundle (windows, folder → type, type → kind), else None."""
    opts = ((bundle.card.get("data") or {}).get("manifest") or {}).get("options") or {}
    dev = opts.get("device")
    return dev if isinstance(dev, dict) else None


def load_device_bundle(path, prefer_int8: bool = True) -> Bundle:
    """:func:`classifier.bundle.load_bundle`, and the bundle must be a device model: its
    card has the ``device`` options with a positive ``windows`` (else a
    :class:`BundleError` naming ``card.json``). What the gateway loads and reloads."""
    b = load_bundle(path, prefer_int8=prefer_int8)
    dev = device_options(b)
    card = Path(path) / "card.json"
    if dev is None:
        raise BundleError(f"{card}: not a device model (no data.manifest.options.device; "
                          "build its dataset with `egw dataset build --by device`)")
    w = dev.get("windows", 1)
    if not isinstance(w, int) or isinstance(w, bool) or w < 1:
        raise BundleError(f"{card}: data.manifest.options.device.windows must be a positive "
                          f"integer, not {w!r}")
    return b


def confusable_pairs(rep: dict, labels: list[str], threshold: float) -> list[dict]:
    """Type pairs (a, b) where at least ``threshold`` of a's captures were called b (either way)."""
    cm = np.asarray(rep["confusion"], dtype=float)
    out = {}
    for i in range(len(labels)):
        n = cm[i].sum()
        for j in range(len(labels)):
            if i != j and n and cm[i, j] / n >= threshold:
                a, b = sorted((labels[i], labels[j]))
                ai, bi = labels.index(a), labels.index(b)
                out[(a, b)] = {"types": [a, b], "captures_a_as_b": int(cm[ai, bi]),
                               "captures_b_as_a": int(cm[bi, ai]),
                               "captures": int(cm[ai].sum() + cm[bi].sum())}
    return sorted(out.values(), key=lambda p: -(p["captures_a_as_b"] + p["captures_b_as_a"]))


def merged_accuracy(y: np.ndarray, pred: np.ndarray, labels: list[str], pairs: list[dict]) -> float:
    """Accuracy when each group of mutually confused types counts as one answer."""
    group = list(range(len(labels)))

    def find(a):
        while group[a] != a:
            a = group[a]
        return a
    for p in pairs:
        a, b = (labels.index(t) for t in p["types"])
        group[find(a)] = find(b)
    g = np.array([find(i) for i in range(len(labels))])
    return float((g[y] == g[pred]).mean()) if len(y) else 0.0


def evaluate_devices(bundle: Bundle, data: str, progress: bool = True,
                     pair_threshold: float = 0.2) -> dict:
    from classifier.build import _progress
    from classifier.build_devices import capture_windows, device_folders
    from classifier.devices import aggregate, read_mac_file

    dev = device_options(bundle)
    root = Path(data)
    dirs, _, _ = device_folders(root)
    types = dev.get("types") or {}
    index = {c: i for i, c in enumerate(bundle.labels)}
    windows = int(dev.get("windows", 1))
    rows_p, rows_y, cap_p, cap_y, caps, needed, ood = [], [], [], [], [], [], []
    bar = _progress(sum(len(v) for v in dirs.values()), "device captures", progress)
    for d in sorted(dirs):
        mac = read_mac_file(root / d)
        t = types.get(d, d)
        for f in dirs[d]:
            X, track = capture_windows(f, mac, bundle.preprocess, windows)
            bar.update(1)
            if not len(X):
                continue
            p = bundle.predict(X)
            if t not in index:
                ood.append({"capture": str(f.relative_to(root)), "type": t,
                            "confidence": float(aggregate(p).max())})
                continue
            rows_p.append(p)
            rows_y += [index[t]] * len(X)
            cap_p.append(aggregate(p))
            cap_y.append(index[t])
            caps.append(str(f.relative_to(root)))
            needed.append(len(track.views))
    bar.close()
    res: dict = {"bundle": str(bundle.path), "model_file": bundle.model_file.name,
                 "data": f"{data} (device captures)", "windows": windows, "k": bundle.preprocess.k,
                 "rule": f"per capture: mean probability over up to {windows} windows of "
                         f"{bundle.preprocess.k} usable packets of the device (its MAC)"}
    if cap_y:
        P, y = np.stack(cap_p), np.array(cap_y)
        pred = P.argmax(1)
        rep = report(y, pred, bundle.labels)
        pairs = confusable_pairs(rep, bundle.labels, pair_threshold)
        res["per_capture"] = {"accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"], "n": rep["n"]}
        res["per_capture_report"] = rep
        Pw, yw = np.concatenate(rows_p), np.array(rows_y)
        w = report(yw, Pw.argmax(1), bundle.labels)
        res["per_window"] = {"accuracy": w["accuracy"], "macro_f1": w["macro_f1"], "n": w["n"]}
        res["indistinguishable"] = {"threshold": pair_threshold, "pairs": pairs,
                                    "accuracy_pairs_merged": merged_accuracy(y, pred, bundle.labels,
                                                                             pairs)}
        kinds = dev.get("kinds") or {}
        if kinds and all(kinds.get(c) for c in bundle.labels):
            k_of = np.array([kinds[c] for c in bundle.labels], dtype=object)
            res["per_capture_kind_accuracy"] = float((k_of[y] == k_of[pred]).mean())
        decided = bundle.decide(P)
        res["open_set"] = {"threshold": bundle.threshold,
                           "unknown": sum(1 for lab, _ in decided if lab == "unknown"),
                           "n": len(decided)}
        res["usable_packets_per_capture"] = {"median": float(np.median(needed)),
                                             "max": int(max(needed))}
        res["captures"] = [{"capture": c, "type": bundle.labels[int(t)],
                            "predicted": bundle.labels[int(p)], "confidence": float(P[i].max())}
                           for i, (c, t, p) in enumerate(zip(caps, y, pred))]
    if ood:
        res["out_of_distribution"] = ood
    return res


def format_devices(res: dict) -> str:
    lines = [f"bundle {res['bundle']} ({res['model_file']}), data {res['data']}", res["rule"]]
    if "per_capture" in res:
        pc, pw = res["per_capture"], res["per_window"]
        lines.append(f"per capture: accuracy {pc['accuracy']:.4f}, macro-F1 {pc['macro_f1']:.4f}, "
                     f"{pc['n']} captures; per window: accuracy {pw['accuracy']:.4f} ({pw['n']} windows)")
        if "per_capture_kind_accuracy" in res:
            lines.append(f"per capture, kind (camera, plug, hub, ...): accuracy "
                         f"{res['per_capture_kind_accuracy']:.4f}")
        ind = res["indistinguishable"]
        lines.append(f"indistinguishable (>= {100 * ind['threshold']:.0f} % of a type's captures "
                     f"called the other): "
                     + ("; ".join(f"{p['types'][0]} / {p['types'][1]} ({p['captures_a_as_b']}+"
                                  f"{p['captures_b_as_a']} of {p['captures']})" for p in ind["pairs"])
                        or "none"))
        lines.append(f"accuracy with each such group as one answer: {ind['accuracy_pairs_merged']:.4f}")
        lines.append(format_report(res["per_capture_report"], "per capture:"))
    for o in res.get("out_of_distribution", []):
        lines.append(f"not a type of the bundle: {o['capture']} ({o['type']}), top confidence "
                     f"{o['confidence']:.3f}")
    return "\n".join(lines)
