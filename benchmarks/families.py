"""Train every model family on the same honest split, each with a stated budget, and write
``docs/results/families.json`` (the table and learning curves of docs/models.md) and
``docs/results/label_efficiency.json`` (macro-F1 against labels per class).

Every model is trained by the ``egw train`` command recorded in the JSON (nothing here
trains by other means); every figure is the bundle's LiteRT score from its card.json.
Datasets are the ``egw dataset build`` commands below: the same iscx-apps sessions, six
traffic types, ports and counters masked, split 70/10/20 by session (seed 0), one
dataset per representation. Families, options and budgets were chosen before the test
split was read; each model's test figure is read once, here.

    .venv/bin/python benchmarks/families.py                     # everything (~75 min, 2 cores)
    .venv/bin/python benchmarks/families.py --only tinykp,knn   # some families
    .venv/bin/python benchmarks/families.py --label-efficiency  # the label-efficiency curve
    .venv/bin/python benchmarks/families.py --render            # JSON -> docs/models.md tables
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import repro_common as rc  # noqa: E402  (this folder is on sys.path)

DATA = "../shared/data"
RESULTS = REPO / "docs" / "results"
IMG = REPO / "docs" / "img" / "models"
EGW = [sys.executable, "-m", "egw_cli.main"]


def dataset_cmd(repr_: str) -> list[str]:
    return ["dataset", "build", "--input", f"{DATA}/iscx-apps", "--taxonomy",
            f"{DATA}/taxonomy-iscx-traffic-types.yaml", "--repr", repr_, "--zero-ports",
            "--split", "0.7,0.1,0.2", "--min-files", "1000000", "--jobs", "2", "--no-progress",
            "--out", f"runs/data/iscx6-{repr_}-sess.npz"]


# name, family, representation, extra options, budget in words
FAMILIES = [
    ("boosted", "boosted", "kpackets", [], "100 boosting iterations x 6 classes, 15 leaves"),
    ("forest", "forest", "kpackets", [], "30 trees, 256 leaves"),
    ("tinykp", "tinykp", "kpackets", ["--teacher", "oof-boosted"],
     "120 epochs, cosine decay, distilled from out-of-fold boosted trees (5 folds by session)"),
    ("kpnet", "kpnet", "kpackets", ["--epochs", "80"], "80 epochs max, early stop on val loss"),
    ("knn", "knn", "kpackets", [], "k = 5, all training sessions as prototypes"),
    ("tiny", "tiny", "session784", ["--epochs", "80"], "80 epochs max, early stop on val loss"),
    ("nas", "nas", "session784", ["--generations", "8", "--population", "6", "--epochs", "8",
                                  "--workers", "2"],
     "8 generations x 6 children, 8 epochs each, 2 worker processes"),
    ("cart", "cart", "image900", [], "one tree, depth <= 30"),
    ("deepnfv", "deepnfv", "image900", ["--epochs", "30", "--max-seconds", "480"],
     "30 epochs or 480 s"),
    ("cnn", "cnn", "packet1480", ["--epochs", "30", "--max-seconds", "480"], "30 epochs or 480 s"),
    ("bytesgan", "bytesgan", "packet1480", ["--epochs", "30", "--max-seconds", "480"],
     "30 epochs or 480 s, every training packet labelled (and real data for D)"),
]
LABELS_PER_CLASS = [10, 30, 100, 300, None]
LE_FAMILIES = [("bytesgan", ["--epochs", "40", "--steps-per-epoch", "20", "--max-seconds", "100"],
                "epochs of 20 D+G steps (batch 256), 40 or 100 s"),
               ("cnn", ["--epochs", "40", "--max-seconds", "100"], "40 epochs or 100 s"),
               ("tiny", ["--epochs", "40", "--max-seconds", "100"], "40 epochs or 100 s"),
               ("forest", [], "30 trees")]


def egw(argv: list[str], log: Path) -> float:
    t = time.time()
    with open(log, "w") as fh:
        fh.write("$ egw " + " ".join(shlex.quote(a) for a in argv) + "\n")
        fh.flush()
        r = subprocess.run(EGW + argv, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if r.returncode:
        raise SystemExit(f"egw {' '.join(argv)} failed (exit {r.returncode}): see {log}")
    return time.time() - t


def ensure_dataset(repr_: str, logs: Path) -> str:
    cmd = dataset_cmd(repr_)
    out = cmd[-1]
    if not (REPO / out).exists():
        rc.log(f"building {out}")
        egw(cmd, logs / f"build-{repr_}.log")
    return out


def _curve(history: dict) -> dict:
    keep = ("loss", "val_loss", "accuracy", "val_accuracy", "val_macro_f1", "d_adv_loss",
            "g_adv_loss", "d_sup_loss")
    return {k: [round(float(v), 4) for v in vals] for k, vals in (history or {}).items()
            if k in keep}


def row_from_card(name: str, card: dict, budget: str, wall: float | None) -> dict:
    m = card["metrics"]
    s = card["sizes"]
    tr = card["training"]
    return {
        "name": name, "model": card["model"], "input": card["data"]["representation"],
        "command": card["command"], "budget": budget,
        "train_seconds": tr.get("seconds"), "wall_seconds": round(wall, 1) if wall else None,
        "epochs_run": tr.get("epochs_run") or tr.get("epochs") or tr.get("candidates"),
        "budget_exhausted": tr.get("budget_exhausted", False),
        "params": s["params"], "flops": s["flops"], "flash_float": s["flash_bytes_float"],
        "flash_int8": s["flash_bytes_int8"],
        "latency_ms_float": card["latency_ms_per_sample"]["float"],
        "latency_ms_int8": card["latency_ms_per_sample"]["int8"],
        "val_macro_f1_float": round(m["float"]["val"]["macro_f1"], 4),
        "val_macro_f1_int8": round(m["int8"]["val"]["macro_f1"], 4),
        "test_macro_f1_float": round(m["float"]["test"]["macro_f1"], 4),
        "test_macro_f1_int8": round(m["int8"]["test"]["macro_f1"], 4),
        "test_accuracy_int8": round(m["int8"]["test"]["accuracy"], 4),
        "test_sessions": m["test_sessions"],
        "int8_float_agreement": round(m["int8_float_agreement"], 4),
        "scored_per": m["scored_per"],
        "curve": _curve(card.get("history")),
        **({"note": card["int8_note"]} if "int8_note" in card else {}),
    }


def _same_command(card_cmd: str, argv: list[str]) -> bool:
    """Is ``card_cmd`` the ``egw train`` command ``argv``, up to its --out?"""
    from classifier.recipe import set_option

    got = shlex.split(card_cmd or "")[1:]
    return set_option(got, "--out", None) == set_option(argv, "--out", None)


def run_families(only: set | None, runs: Path, logs: Path, adopt: dict | None = None) -> None:
    out = RESULTS / "families.json"
    res = json.loads(out.read_text()) if out.exists() else {"rows": []}
    rows = {r["name"]: r for r in res["rows"]}
    for name, fam, repr_, extra, budget in FAMILIES:
        if only and name not in only:
            continue
        data = ensure_dataset(repr_, logs)
        bundle = runs / name
        argv = ["train", "--model", fam, "--data", data, "--out", str(bundle.relative_to(REPO)),
                "--seed", "0", "--no-progress"] + extra
        if adopt and name in adopt:
            # a bundle already made by exactly this command (e.g. in the option selection):
            # its figures are taken as they are, not trained again
            bundle = Path(adopt[name])
            card = json.loads((bundle / "card.json").read_text())
            if not _same_command(card.get("command"), argv):
                raise SystemExit(f"--adopt {name}={bundle}: made by `{card.get('command')}`, "
                                 f"not by `egw {' '.join(argv)}`")
            wall = None
        else:
            rc.log(f"training {name}: egw {' '.join(argv)}")
            wall = egw(argv, logs / f"train-{name}.log")
            card = json.loads((bundle / "card.json").read_text())
        rows[name] = row_from_card(name, card, budget, wall)
        r = rows[name]
        rc.log(f"{name}: test macro-F1 int8 {r['test_macro_f1_int8']} (float {r['test_macro_f1_float']}), "
               f"val {r['val_macro_f1_int8']}, {r['params']} params"
               + (f", {wall:.0f} s" if wall else ", adopted"))
        res = {"datasets": {rp: dataset_cmd(rp) for rp in ("kpackets", "session784", "image900",
                                                            "packet1480")},
               "hardware": rc.hardware(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "rows": [rows[n] for n, *_ in FAMILIES if n in rows]}
        rc.write_json(out, res)


def run_label_efficiency(runs: Path, logs: Path) -> None:
    out = RESULTS / "label_efficiency.json"
    data = ensure_dataset("packet1480", logs)
    res = json.loads(out.read_text()) if out.exists() else {"points": []}
    done = {(p["model"], p["labels_per_class"]) for p in res["points"]}
    for n in LABELS_PER_CLASS:
        for fam, extra, budget in LE_FAMILIES:
            if (fam, n) in done:
                continue
            tag = f"le-{fam}-{n or 'all'}"
            argv = ["train", "--model", fam, "--data", data, "--out",
                    str((runs / tag).relative_to(REPO)), "--seed", "0", "--no-progress"] + extra
            if n:
                argv += ["--labeled-per-class", str(n)]
            rc.log(f"label efficiency: egw {' '.join(argv)}")
            wall = egw(argv, logs / f"train-{tag}.log")
            card = json.loads((runs / tag / "card.json").read_text())
            m = card["metrics"]
            res["points"].append({
                "model": fam, "labels_per_class": n, "budget": budget, "command": card["command"],
                "labelled_rows": card["data"]["rows"]["train_labelled"],
                "unlabelled_rows": card["data"]["rows"]["train_unlabelled"],
                "val_macro_f1_int8": round(m["int8"]["val"]["macro_f1"], 4),
                "test_macro_f1_int8": round(m["int8"]["test"]["macro_f1"], 4),
                "test_macro_f1_float": round(m["float"]["test"]["macro_f1"], 4),
                "test_sessions": m["test_sessions"], "wall_seconds": round(wall, 1),
                "budget_exhausted": card["training"].get("budget_exhausted", False)})
            res.update({"dataset": dataset_cmd("packet1480"), "hardware": rc.hardware(),
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "scored_per": card["metrics"]["scored_per"]})
            rc.write_json(out, res)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="comma-separated family names")
    p.add_argument("--label-efficiency", action="store_true", help="the label-efficiency runs")
    p.add_argument("--render", action="store_true", help="only render docs/models.md from the JSON")
    p.add_argument("--runs", default="runs/families", help="bundle and log folder")
    p.add_argument("--adopt", action="append", default=[], metavar="NAME=DIR",
                   help="take NAME's row from a bundle already trained by the same egw train "
                        "command (checked), instead of training it again")
    a = p.parse_args()
    runs = REPO / a.runs
    logs = runs / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not a.render:
        if a.label_efficiency:
            run_label_efficiency(runs, logs)
        else:
            run_families(set(a.only.split(",")) if a.only else None, runs, logs,
                         dict(x.split("=", 1) for x in a.adopt))
    import models_doc
    models_doc.write_plots()
    models_doc.render_file()
    return 0


if __name__ == "__main__":
    sys.exit(main())
