"""Render the reproduction tables of docs/reproduction.md from the committed JSON in
docs/results/repro/<name>.json, so the numbers on that page are never typed by hand and can be
checked (``check_file``; tests/unit/test_repro_doc.py fails on a table that disagrees with its JSON).

    # after a run of benchmarks/repro_<name>.py: copy its results.json (compacted) and plots in
    .venv/bin/python benchmarks/repro_report.py --collect runs/repro
    # re-render the <!-- begin:NAME --> ... <!-- end:NAME --> blocks of docs/reproduction.md
    .venv/bin/python benchmarks/repro_report.py
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import docblocks

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results" / "repro"
DOC = REPO / "docs" / "reproduction.md"
IMG = REPO / "docs" / "img" / "repro"
BLOCK = re.compile(r"(<!-- begin:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end:(?P=name) -->)", re.S)
#: keys dropped when a run's results.json is committed: nothing a table or finding reads
BULKY = ("confusion",)


def pct(v, nd=1):
    return "–" if v is None else f"{100 * v:.{nd}f}"


def f2(v):
    return "–" if v is None else f"{v:.2f}"


def hw_line(r: dict) -> str:
    h = r["hardware"]
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in r["stage_seconds"].items())
    return (f"*Run: `{r['command']}` (size **{r['size']}**, seed {r['seed']}), finished {r['finished']}; "
            f"wall time **{r['wall_seconds'] / 60:.1f} min** ({stages}); {h['cpu']}, "
            f"{h['cores_allowed']} cores (shared with other jobs, load average at start "
            f"{h['load_average_at_start'][0]}; nice {h['nice']}), {h['memory_gib']} GiB RAM, "
            f"{h['gpus']} GPU, TensorFlow {h['tensorflow']}.*")


def audit_line(a: dict) -> str:
    d = a["duplicates_across_splits"]
    p = a["probe"]
    seen = (f"the first {p['header_bytes']} bytes" if "header_bytes" in p
            else "the whole headers, options included")
    where = f" on {p['scored_on']}" if "scored_on" in p else ""
    probe = (f"shortcut probe (RandomForest on {seen}) macro-F1{where} "
             f"**{p['macro_f1']:.2f}**, accuracy {p['accuracy']:.2f} (majority class {p['majority_accuracy']:.2f})"
             if "macro_f1" in p else f"shortcut probe: {p.get('skipped')}")
    return (f"sessions in more than one split: {a['sessions_in_several_splits']}; identical vectors "
            f"train/test: {d['train/test']['vectors']} ({d['train/test']['test_rows']} test rows), "
            f"train/val: {d['train/val']['vectors']}; duplicates within train: "
            f"{a['duplicates_within_train']}; vectors under several labels: "
            f"{a['vectors_with_several_labels']}; {probe}")


def bytesgan(r: dict) -> str:
    L = []
    S = r["sizes"]
    L.append("#### Data behind the figures\n")
    L.append("| protocol | classes | packets (train / val / test) | sessions (train / val / test) | audit |")
    L.append("|---|---|---|---|---|")
    for prot, d in r["data"].items():
        sp = d["split"]
        cls = ", ".join(f"{c} {d['sessions_per_class'][c]}/{d['packets_per_class'][c]}" for c in d["classes"])
        L.append(f"| {prot} ({d['split_kind']}) | {len(d['classes'])}: {cls} (sessions/packets) | "
                 f"{sp['train']['rows']} / {sp['val']['rows']} / {sp['test']['rows']} | "
                 + f"{sp['train']['sessions']} / {sp['val']['sessions']} / {sp['test']['sessions']}"
                 + (" (overlapping: packets split at random)" if prot == "paper" else "")
                 + f" | {audit_line(d['audit'])} |")
    dropped = r["data"].get("honest", next(iter(r["data"].values())))["dropped_classes_sessions"]
    L.append(f"\nApplications dropped for having fewer usable sessions than the threshold: "
             + ", ".join(f"{c} ({n})" for c, n in dropped.items()) + ".")
    L.append(f"\nGAN: {S['gan_epochs']} epochs x "
             f"{S['gan_steps'] or 'a full pass of'} steps at batch {S['gan_batch']}; CNN: up to "
             f"{S['cnn_epochs']} epochs, early stopping on val loss; sessions capped at "
             f"{S['max_per_class'] or 'no cap'} per application.\n")
    L.append("#### Table V: ByteSGAN vs CNN with few labelled packets per class (test accuracy, %)\n")
    L.append("| labelled / class | paper ByteSGAN | paper CNN | ours, paper protocol: ByteSGAN | CNN "
             "| ours, honest: ByteSGAN per packet (per session) | CNN per packet (per session) "
             "| labelled / unlabelled train rows (honest) | test packets / sessions (honest) |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    P = {p["labelled_per_class"]: p for p in r["paper"]["table5"]}
    ours = {prot: {x["labelled_per_class"]: x for x in rows} for prot, rows in r["table5"].items()}
    for k in sorted(set(P) | set().union(*[set(v) for v in ours.values()])):
        pa = ours.get("paper", {}).get(k)
        ho = ours.get("honest", {}).get(k)
        cells = [str(k), pct(P[k]["bytesgan"], 2) if k in P else "", pct(P[k]["cnn"], 2) if k in P else ""]
        cells += [pct(pa["bytesgan"]["per_row"]["accuracy"]), pct(pa["cnn"]["per_row"]["accuracy"])] if pa else ["", ""]
        if ho:
            cells += [f"{pct(ho['bytesgan']['per_row']['accuracy'])} ({pct(ho['bytesgan']['per_session']['accuracy'])})",
                      f"{pct(ho['cnn']['per_row']['accuracy'])} ({pct(ho['cnn']['per_session']['accuracy'])})",
                      f"{ho['labelled_rows']} / {ho['unlabelled_rows']}",
                      f"{ho['bytesgan']['per_row']['n']} / {ho['bytesgan']['per_session']['n']}"]
        else:
            cells += ["", "", "", ""]
        L.append("| " + " | ".join(cells) + " |")
    L.append("\n#### Table IV: fixed labelled set, growing unlabelled set (ByteSGAN test accuracy, %)\n")
    L.append("| source | labelled | unlabelled | accuracy per packet | (per session) |")
    L.append("|---|---:|---:|---:|---:|")
    for p in r["paper"]["table4"]:
        L.append(f"| paper (7 apps) | {p['labelled']} (total) | {p['unlabelled_per_class']} / class | "
                 f"{pct(p['accuracy'], 2)} | – |")
    for prot, rows in r["table4"].items():
        for x in rows:
            L.append(f"| ours, {prot} protocol | {x['labelled_per_class']} / class ({x['labelled_rows']}) | "
                     f"{x['unlabelled_per_class']} / class ({x['unlabelled_rows']} rows) | "
                     f"{pct(x['bytesgan']['per_row']['accuracy'])} | "
                     f"{pct(x['bytesgan']['per_session']['accuracy'])} |")
    L.append("")
    L.append(hw_line(r))
    return "\n".join(L)


def tinycnn(r: dict) -> str:
    L = ["| method | data / protocol | test n | Acc. | Prec. | Rec. | F1 | Params (M) | Max tensor "
         "| FLOPs (M) | Flash (MB, 4 B/param) | RAM (KB, 4 B x max tensor) | LiteRT float / int8 (KB) |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in r["paper"]["table1"]:
        L.append(f"| {p['method']} | paper (their preprocessing) | – | {f2(p['accuracy'])} | {f2(p['precision'])} | "
                 f"{f2(p['recall'])} | {f2(p['f1'])} | {p['params_m']:.3f} | {p['max_tensor']:,} | "
                 f"{p['flops_m']:.3f} | {p['flash_mb']:.3f} | {p['ram_kb']:.3f} | – |")
    names = {"paper": "Wang's 12-class SessionL7 split (paper protocol)",
             "honest": "iscx-apps {} classes, session-disjoint, masked, chatter filtered (honest)"}
    for prot, x in r["runs"].items():
        h = x["hardware"]
        tests = [("test", names.get(prot, prot).format(len(x.get("classes", ()))))]
        if prot == "paper" and "test_without_train_duplicates" in x:
            tests.append(("test_without_train_duplicates",
                          f"same, t10k minus its {x['test_rows_identical_to_a_train_row']} vectors identical to train"))
        for key, what in tests:
            t = x[key]
            L.append(f"| ours: HW-NAS best child | {what} | {t['n']} | {pct(t['accuracy'], 2)} | "
                     f"{pct(t['macro_precision'], 2)} | {pct(t['macro_recall'], 2)} | {pct(t['macro_f1'], 2)} | "
                     f"{h['params'] / 1e6:.4f} | {h['max_tensor']:,} | {h['flops'] / 1e6:.3f} | "
                     f"{h['flash_bytes_paper_convention'] / 1e6:.3f} | {h['ram_bytes_paper_convention'] / 1e3:.3f} | "
                     f"{h['flash_bytes_tflite_float'] / 1e3:.1f} / {h['flash_bytes_tflite_int8'] / 1e3:.1f} |")
    L.append("\nPrecision, recall and F1 are macro averages over the classes (the paper does not say which "
             "average it uses). FLOPs count a multiply-accumulate as 2.\n")
    S = r["sizes"]
    L.append(f"Search: {S['generations']} generations x {S['population']} children (+ the first parent), "
             f"up to {S['epochs']} epochs each with early stopping, limits {S['limits']}; samples capped at "
             f"{S['max_per_class'] or 'no cap'} per class.\n")
    L.append("| protocol | classes (sessions) | train+val / test samples | chosen genome | candidates | audit |")
    L.append("|---|---|---|---|---:|---|")
    for prot, x in r["runs"].items():
        sp = x["split"]
        cls = ", ".join(f"{c} {v['sessions']}" for c, v in x["counts"].items())
        g = "; ".join(f"{b['filters']}x{b['kernel']}/s{b['stride']}{' ' + b['pool'] if b['pool'] else ''}"
                      for b in x["genome"]["blocks"]) + f"; head {x['genome'].get('head')}"
        L.append(f"| {prot} ({x['split_kind']}) | {cls} | {sp['train']['rows'] + sp['val']['rows']} / "
                 f"{sp['test']['rows']} | {g} | {len(x['candidates'])} | {audit_line(x['audit'])} |")
    L.append("")
    L.append(hw_line(r))
    return "\n".join(L)


def summary(rs: dict) -> str:
    """One line per published table: the paper's headline figure, ours on its protocol, ours honest."""
    L = ["| table | metric | paper | ours, paper protocol | ours, honest protocol | run |",
         "|---|---|---:|---:|---:|---|"]
    for name in ("bytesgan",):
        r = rs.get(name)
        if not r:
            continue
        t5 = r["table5"]
        Lmax = max(x["labelled_per_class"] for rows in t5.values() for x in rows)
        cell = {p: next((x for x in rows if x["labelled_per_class"] == Lmax), None) for p, rows in t5.items()}

        def c(p, m):
            x = cell.get(p)
            return "–" if not x else f"{pct(x[m]['per_row']['accuracy'])}"
        L.append(f"| ByteSGAN V | accuracy per packet, ByteSGAN / CNN | 92.15 / 88.25 (1000 labelled/class) | "
                 f"{c('paper', 'bytesgan')} / {c('paper', 'cnn')} ({Lmax}/class) | "
                 f"{c('honest', 'bytesgan')} / {c('honest', 'cnn')} ({Lmax}/class) | {name} |")
        t4 = r["table4"]

        def d(p):
            rows = t4.get(p) or []
            return "–" if not rows else " → ".join(pct(x["bytesgan"]["per_row"]["accuracy"]) for x in rows)
        lab = next(iter(t4.values()))[0]["labelled_per_class"] if t4 else "?"
        L.append(f"| ByteSGAN IV | ByteSGAN accuracy as unlabelled data grows | 98.21 → 99.18 (1000 labelled) | {d('paper')} "
                 f"({lab} labelled/class) | {d('honest')} | {name} |")
    for name in ("tinycnn", "tinycnn-larger"):
        r = rs.get(name)
        if not r:
            continue
        x = r["runs"]

        def t(p):
            return "–" if p not in x else (f"{pct(x[p]['test']['accuracy'], 2)} / {pct(x[p]['test']['macro_f1'], 2)}"
                                           f" ({x[p]['hardware']['params'] / 1e3:.1f}k params)")
        L.append(f"| Tiny-CNN 1 | accuracy / F1, 12 classes | 97.06 / 97.11 (88k params); Wang 1D-CNN 86.6 | "
                 f"{t('paper')} | {t('honest')} | {name} |")
    for name in ("deepnfv", "deepnfv-larger"):
        r = rs.get(name)
        if not r:
            continue
        x = r["runs"]

        def n(p):
            if p not in x:
                return "–"
            a, b = x[p]["deepnfv"]["per_row"], x[p]["cart"]["per_row"]
            return (f"{a['macro_precision']:.2f}/{a['macro_recall']:.2f} vs "
                    f"{b['macro_precision']:.2f}/{b['macro_recall']:.2f}")
        L.append(f"| DeepNFV I | mean precision/recall, CNN vs CART | 0.95/0.95 vs 0.87/0.82 | {n('paper')} | "
                 f"{n('honest')} | {name} |")
    return "\n".join(L)


PAPER_TO_OURS = {"Youtube": "youtube", "Gmail": "gmail", "FTP": "ftps"}


def deepnfv(r: dict) -> str:
    runs = r["runs"]
    prots = list(runs)
    head = "| class | paper CNN P / R | paper CART P / R |" + "".join(
        f" ours {p}: CNN P / R | CART P / R | test packets |" for p in prots)
    L = [head, "|---|---|---|" + "---|---|---:|" * len(prots)]
    P = r["paper"]["table1"]
    inv = {v: k for k, v in PAPER_TO_OURS.items()}
    classes = runs[prots[0]]["classes"]
    for c in classes:
        pk = inv.get(c)
        cells = [c + (f" (paper: {pk})" if pk else "")]
        if pk:
            p = P[pk]
            cells += [f"{p['cnn_precision']:.2f} / {p['cnn_recall']:.2f}", f"{p['cart_precision']:.2f} / {p['cart_recall']:.2f}"]
        else:
            cells += ["", ""]
        for prot in prots:
            x = runs[prot]
            if c not in x["classes"]:
                cells += ["", "", ""]
                continue
            a = x["deepnfv"]["per_row"]["per_class"][c]
            b = x["cart"]["per_row"]["per_class"][c]
            cells += [f"{a['precision']:.2f} / {a['recall']:.2f}", f"{b['precision']:.2f} / {b['recall']:.2f}",
                      str(a["support"])]
        L.append("| " + " | ".join(cells) + " |")
    for pk in P:
        if pk in PAPER_TO_OURS or pk == "Average":
            continue
        p = P[pk]
        L.append(f"| {pk} (not in our data) | {p['cnn_precision']:.2f} / {p['cnn_recall']:.2f} | "
                 f"{p['cart_precision']:.2f} / {p['cart_recall']:.2f} |" + " | | |" * len(prots))
    p = P["Average"]
    cells = ["**Average** (macro)", f"{p['cnn_precision']:.2f} / {p['cnn_recall']:.2f}",
             f"{p['cart_precision']:.2f} / {p['cart_recall']:.2f}"]
    for prot in prots:
        a = runs[prot]["deepnfv"]["per_row"]
        b = runs[prot]["cart"]["per_row"]
        cells += [f"{a['macro_precision']:.2f} / {a['macro_recall']:.2f}",
                  f"{b['macro_precision']:.2f} / {b['macro_recall']:.2f}", str(a["n"])]
    L.append("| " + " | ".join(cells) + " |")
    L.append("\n| protocol | accuracy CNN / CART per packet | per session | sessions (train / val / test) | "
             "CNN epochs run, params | CART nodes, depth | audit |")
    L.append("|---|---|---|---|---|---|---|")
    for prot, x in runs.items():
        sp = x["split"]
        a, b = x["deepnfv"], x["cart"]
        sess = (f"{sp['train']['sessions']} / {sp['val']['sessions']} / {sp['test']['sessions']}"
                + (" (overlapping: packets split at random)" if prot == "paper" else ""))
        L.append(f"| {prot} ({x['split_kind']}) | {pct(a['per_row']['accuracy'])} / {pct(b['per_row']['accuracy'])} | "
                 + (f"{pct(a['per_session']['accuracy'])} / {pct(b['per_session']['accuracy'])}"
                    if prot != "paper" else "–")
                 + f" | {sess} | {x['deepnfv_epochs_run']}, {x['deepnfv_hardware']['params']:,} | "
                 f"{x['cart_tree']['nodes']}, {x['cart_tree']['depth']} | {audit_line(x['audit'])} |")
    L.append("")
    L.append(hw_line(r))
    return "\n".join(L)


def bytesgan_findings(r: dict) -> str:
    """The sentences of the ByteSGAN discussion that quote figures, from the JSON."""
    t5, t4, data = r["table5"], r["table4"], r["data"]
    accs = [x[m]["per_row"]["accuracy"] for rows in t5.values() for x in rows for m in ("bytesgan", "cnn")]
    L = [f"- Over every Table V cell (both protocols, {', '.join(str(x['labelled_per_class']) for x in next(iter(t5.values())))} "
         f"labelled packets per class) the per-packet accuracies lie between {pct(min(accs))} % and "
         f"{pct(max(accs))} % ({len(next(iter(data.values()))['classes'])} classes, chance "
         f"{pct(1 / len(next(iter(data.values()))['classes']))} %)."]
    for prot, rows in t4.items():
        a, b = rows[0]["bytesgan"]["per_row"]["accuracy"], rows[-1]["bytesgan"]["per_row"]["accuracy"]
        L.append(f"- Table IV, {prot} protocol: with {rows[-1]['unlabelled_rows']} unlabelled packets instead of "
                 f"{rows[0]['unlabelled_rows']}, ByteSGAN's accuracy went from {pct(a)} % to {pct(b)} % "
                 f"({'up' if b > a else 'down' if b < a else 'unchanged'}, {pct(abs(b - a))} points).")
    for prot, rows in t5.items():
        ahead = [x["labelled_per_class"] for x in rows
                 if x["bytesgan"]["per_row"]["accuracy"] > x["cnn"]["per_row"]["accuracy"]]
        L.append(f"- Table V, {prot} protocol: ByteSGAN is ahead of the CNN at "
                 + (", ".join(map(str, ahead)) if ahead else "none") + " of "
                 + ", ".join(str(x["labelled_per_class"]) for x in rows) + " labelled packets per class.")
    runs = [h for h in r.get("losses", {}).values() if len(h.get("d_sup_loss", [])) > 1]
    if runs:
        falling = sum(h["d_sup_loss"][-1] < h["d_sup_loss"][-2] for h in runs)
        best_last = sum(min(h["val_loss"]) == h["val_loss"][-1] for h in runs if h.get("val_loss"))
        L.append(f"- Training length: the discriminator's supervised training loss was still falling at the last "
                 f"epoch in {falling} of the {len(runs)} Table V GAN runs; their validation loss was lowest at the "
                 f"last epoch in {best_last} of them.")
    pa, ho = (data[p]["audit"] if p in data else {"probe": {}} for p in ("paper", "honest"))
    if "macro_f1" in pa["probe"] and "macro_f1" in ho["probe"]:
        L.append(f"- Shortcut probe (whole headers): macro-F1 {pa['probe']['macro_f1']:.2f} on the paper protocol "
                 f"({pa['sessions_in_several_splits']} of {sum(data['paper']['sessions_per_class'].values())} "
                 f"sessions with packets in more than one split), "
                 f"{ho['probe']['macro_f1']:.2f} honest (majority class {ho['probe']['majority_accuracy']:.2f}).")
    return "\n".join(L)


def tinycnn_findings(r: dict) -> str:
    x = r["runs"]
    L = []
    if "paper" in x and "test_without_train_duplicates" in x["paper"]:
        p = x["paper"]
        L.append(f"- Wang's split: {p['test_rows_identical_to_a_train_row']} of {p['test']['n']} test vectors are "
                 f"identical to a training vector; without them the accuracy is {pct(p['test_without_train_duplicates']['accuracy'], 2)} % "
                 f"instead of {pct(p['test']['accuracy'], 2)} %.")
    for prot, run in x.items():
        heads = {}
        for c in run["candidates"]:
            heads.setdefault(c["genome"].get("head"), []).append(c.get("val_macro_f1"))
        parts = [f"{h} head " + (f"{min(v):.2f}" if min(v) == max(v) else f"{min(v):.2f}–{max(v):.2f}")
                 + f" ({len(v)} candidate{'s' if len(v) > 1 else ''})" for h, v in sorted(heads.items())
                 if all(a is not None for a in v)]
        if parts:
            L.append(f"- {prot} search, holdout macro-F1 of the candidates by head: " + "; ".join(parts)
                     + f"; chosen: {run['genome'].get('head')} head.")
    h = x.get("honest")
    if h and "macro_f1" in h["audit"]["probe"]:
        L.append(f"- The honest set's shortcut probe (whole headers of the masked packets) reaches macro-F1 "
                 f"{h['audit']['probe']['macro_f1']:.2f} (majority class {h['audit']['probe']['majority_accuracy']:.2f}).")
    return "\n".join(L)


def deepnfv_findings(r: dict) -> str:
    runs = r["runs"]
    L = []
    for prot, x in runs.items():
        a, b = x["deepnfv"]["per_row"]["accuracy"], x["cart"]["per_row"]["accuracy"]
        who = "CART is ahead of the DeepNFV CNN" if b > a else "the DeepNFV CNN is ahead of CART"
        L.append(f"- {prot} protocol: {who} per packet ({pct(b)} % vs {pct(a)} %); the CNN ran "
                 f"{x['deepnfv_epochs_run']} of at most {r['sizes']['epochs']} epochs"
                 + (" (early stopping never triggered)" if x["deepnfv_epochs_run"] >= r["sizes"]["epochs"]
                    else " (stopped early on validation loss)")
                 + ("" if prot == "paper" else
                    f"; per session (mean of packet probabilities) CART {pct(x['cart']['per_session']['accuracy'])} %, "
                    f"CNN {pct(x['deepnfv']['per_session']['accuracy'])} %") + ".")
    if {"paper", "honest"} <= set(runs):
        d = {m: runs["paper"][m]["per_row"]["accuracy"] - runs["honest"][m]["per_row"]["accuracy"]
             for m in ("cart", "deepnfv")}
        L.append(f"- From the paper protocol to the honest one CART loses {pct(d['cart'])} points and the CNN "
                 f"{pct(d['deepnfv'])}; shortcut probe {runs['paper']['audit']['probe'].get('macro_f1', 0):.2f} → "
                 f"{runs['honest']['audit']['probe'].get('macro_f1', 0):.2f} macro-F1, "
                 f"{runs['paper']['audit']['sessions_in_several_splits']} of "
                 f"{sum(runs['paper']['sessions_per_class'].values())} sessions straddling the paper's packet split.")
    return "\n".join(L)


def compare(rs: dict, base: str, other: str) -> str:
    """How the same script's two runs (``base`` and ``other``, e.g. tinycnn and tinycnn-larger)
    differ on each protocol's headline figures."""
    def figures(name):
        out = {}
        for prot, x in rs[name]["runs"].items():
            if "test" in x:     # tinycnn
                out[prot] = {"test accuracy": x["test"]["accuracy"], "test macro-F1": x["test"]["macro_f1"]}
            else:               # deepnfv
                out[prot] = {"CNN accuracy": x["deepnfv"]["per_row"]["accuracy"],
                             "CART accuracy": x["cart"]["per_row"]["accuracy"]}
        return out
    a, b = figures(base), figures(other)
    L = []
    for prot in a:
        if prot not in b:
            continue
        parts = [f"{k} {pct(a[prot][k])} % → {pct(b[prot][k])} % "
                 f"({'up' if b[prot][k] > a[prot][k] else 'down' if b[prot][k] < a[prot][k] else 'same'})"
                 for k in a[prot]]
        L.append(f"- {prot} protocol, {base} → {other}: " + "; ".join(parts) + ".")
    return "\n".join(L)


#: the runs on the page: docs/results/repro/<name>.json; "<script>-<variant>" is a run of the
#: same script at another size (its own --out folder runs/repro/<name>)
RUNS = ("bytesgan", "tinycnn", "tinycnn-larger", "deepnfv", "deepnfv-larger")
_FNS = {"bytesgan": (bytesgan, bytesgan_findings), "tinycnn": (tinycnn, tinycnn_findings),
        "deepnfv": (deepnfv, deepnfv_findings)}
#: block name -> (JSON under docs/results/repro, renderer)
RENDERERS = {}
for _run in RUNS:
    _table, _findings = _FNS[_run.split("-")[0]]
    RENDERERS[_run] = (_run, _table)
    RENDERERS[f"{_run}-findings"] = (_run, _findings)


def compact(obj):
    """``obj`` without the BULKY keys, at any depth."""
    if isinstance(obj, dict):
        return {k: compact(v) for k, v in obj.items() if k not in BULKY}
    if isinstance(obj, list):
        return [compact(v) for v in obj]
    return obj


def collect(runs: Path, results: Path = RESULTS, img: Path = IMG) -> list[str]:
    """Copy each run's ``runs/<name>/results.json`` (compacted) to ``results/<name>.json`` and its
    plots to ``img``; returns the names copied."""
    results.mkdir(parents=True, exist_ok=True)
    img.mkdir(parents=True, exist_ok=True)
    done = []
    for name in RUNS:
        f = runs / name / "results.json"
        if not f.is_file():
            continue
        r = json.loads(f.read_text())
        prefix = name.split("-", 1)[1] + "_" if "-" in name else ""   # tinycnn-larger: larger_*.png
        for p in r["plots"]:
            shutil.copy2(f.parent / p, img / (prefix + p))
        r["plots"] = [prefix + p for p in r["plots"]]
        (results / f"{name}.json").write_text(json.dumps(compact(r), indent=1) + "\n")
        done.append(name)
    return done


def load(results: Path = RESULTS) -> dict[str, dict]:
    return {n: json.loads((results / f"{n}.json").read_text()) for n in RUNS if (results / f"{n}.json").is_file()}


def render_block(name: str, rs: dict[str, dict]) -> str | None:
    """The text of block ``name`` (ending in a newline), or None when its JSON is missing."""
    if name == "summary":
        return summary(rs) + "\n" if rs else None
    if name.endswith("-compare"):       # tinycnn-compare: tinycnn vs tinycnn-larger
        base = name.removesuffix("-compare")
        return compare(rs, base, f"{base}-larger") + "\n" if {base, f"{base}-larger"} <= set(rs) else None
    if name not in RENDERERS or RENDERERS[name][0] not in rs:
        return None
    src, fn = RENDERERS[name]
    return fn(rs[src]) + "\n"


def check_file(path: Path = DOC, results: Path = RESULTS) -> list[str]:
    """Names of the blocks in ``path`` whose text differs from their JSON's rendering (or that
    have no JSON)."""
    rs = load(results)
    return docblocks.stale(path, BLOCK, lambda name: render_block(name, rs))


def render_file(path: Path = DOC, results: Path = RESULTS) -> list[str]:
    """Rewrite the blocks of ``path`` from the JSON; returns the names filled."""
    rs = load(results)
    return docblocks.fill(path, BLOCK, lambda name: render_block(name, rs))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collect", metavar="RUNS", help="first copy RUNS/<name>/results.json (compacted) to "
                    "the results folder and the runs' plots to --img (e.g. runs/repro)")
    ap.add_argument("--results", default=str(RESULTS), help="the committed JSON (default docs/results/repro)")
    ap.add_argument("--img", default=str(IMG))
    ap.add_argument("--doc", default=str(DOC), help="the page whose blocks are filled")
    ap.add_argument("--check", action="store_true", help="only list the blocks that disagree with their JSON")
    args = ap.parse_args(argv)
    results, doc = Path(args.results), Path(args.doc)
    if args.collect:
        print(f"collected {', '.join(collect(Path(args.collect), results, Path(args.img))) or 'nothing'} "
              f"into {results}")
    if args.check:
        bad = check_file(doc, results)
        print(f"{doc}: " + (f"blocks disagreeing with their JSON: {', '.join(bad)}" if bad else "every block matches"))
        return 1 if bad else 0
    print(f"filled {', '.join(render_file(doc, results))} in {doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
