"""Open-set figures: how many sessions of real unfamiliar traffic a bundle answers `unknown`.

Sources, each split into a tuning part (may choose the OOD method and is passed to
`egw ood fit --tune`) and a test part (read here, once, for the published figure):

- ``iot``: IoT Sentinel device captures (../shared/data/iot-sentinel), built with the
  default bundle's preprocess.json; devices alternate between the parts (sorted by name),
  so no device is in both;
- ``live``: traffic of real tools in network namespaces (benchmarks/live_captures.py:
  iperf3 TCP and UDP, an HTTPS and an HTTP download, a TLS remote shell); runs alternate;
- ``loao``: leave-applications-out on iscx-apps: a tinykp trained (``--max-seconds 300``)
  without 13 applications, scored on them; applications split between the parts.

The default bundle is scored on ``iot`` and ``live`` (its in-distribution: the iscx-apps
test split); the leave-applications-out bundle on ``loao`` (its own test split). Each
bundle's threshold comes from its validation sessions (``reject_rate`` of them above it);
the figure is the share of unfamiliar test sessions above it, with the share of
in-distribution test sessions above it beside. The max-probability baseline (its
threshold also at the 5 % validation quantile) is reported too.

    .venv/bin/python benchmarks/open_set.py [--work runs/open_set]

Writes docs/results/open_set.json and docs/img/models/open_set_roc.png. Slow steps (the
leave-applications-out training) are skipped when their output exists under --work.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from classifier.bundle import DEFAULT_BUNDLE_DIR, load_bundle  # noqa: E402
from classifier.dataset import load_dataset  # noqa: E402
from classifier.metrics import auroc  # noqa: E402
from classifier.ood_fit import OOD_METHOD, first_rows  # noqa: E402

DATA = (REPO / ".." / "shared" / "data").resolve()
TAXONOMY = DATA / "taxonomy-iscx-traffic-types.yaml"
LOAO_TUNE = ("hangout_chat", "hangout_audio", "hangout_video", "vpn_hangouts_chat", "scp_down",
             "icq_chat", "vpn_icq_chat")
LOAO_TEST = ("netflix", "vpn_netflix", "spotify", "vpn_spotify", "sftp_down", "vpn_sftp")
LOAO_SECONDS = 300
OUT_JSON = REPO / "docs" / "results" / "open_set.json"
OUT_PNG = REPO / "docs" / "img" / "models" / "open_set_roc.png"
COMMANDS: list[str] = []


def _rel(a: str) -> str:
    return a.replace(str(REPO) + "/", "")


def egw(*args: str, needed: bool = True) -> None:
    """Record the command (the JSON lists the whole pipeline); run it when ``needed``."""
    COMMANDS.append("egw " + " ".join(_rel(a) for a in args))
    if not needed:
        return
    cmd = [sys.executable, "-m", "egw_cli.main", *args]
    print("+ egw " + " ".join(args), flush=True)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(["nice", "-n", "10", *cmd], check=True, env=env, cwd=REPO)


def build(inp: Path, out: Path, *opts: str) -> Path:
    egw("dataset", "build", "--input", str(inp), "--min-files", "1000000", "--jobs", "2",
        "--no-progress", "--out", str(out), *opts, needed=not out.exists())
    return out


def links(dst: Path, names) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        if not (dst / n).exists():
            (dst / n).symlink_to(DATA / "iscx-apps" / n)
    return dst


def split_by_class(src: Path, work: Path, stem: str) -> tuple[Path, Path]:
    """Two datasets from ``src``: classes (devices, tools) alternating by sorted name."""
    d = dict(np.load(src, allow_pickle=False))
    labels = json.loads(str(d["labels"]))
    present = sorted({labels[i] for i in d["y"].tolist()})
    tune_ids = [labels.index(n) for n in present[0::2]]
    outs = []
    for part, sel in (("tune", np.isin(d["y"], tune_ids)), ("test", ~np.isin(d["y"], tune_ids))):
        out = work / f"{stem}-{part}.npz"
        np.savez_compressed(out, **{k: (v[sel] if v.ndim and len(v) == len(d["y"]) else v)
                                   for k, v in d.items()})
        outs.append(out)
    return outs[0], outs[1]


def fitted_on(card: dict, tunes: set[str]) -> bool:
    """Whether the bundle's OOD part was fitted by this version of `egw ood fit` (its
    method) on exactly these tuning sources."""
    ood = card.get("ood") or {}
    return ood.get("method") == OOD_METHOD and set(ood.get("tuning_sources", {})) == tunes


def prepare(work: Path, iscx: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    pre = str(DEFAULT_BUNDLE_DIR / "preprocess.json")
    iot_all = build(DATA / "iot-sentinel", work / "iot-sentinel.npz", "--preprocess", pre,
                    "--split", "1,0,0", "--skip-bad")
    iot_tune, iot_test = split_by_class(iot_all, work, "iot")
    COMMANDS.append("(iot-sentinel.npz split by device, alternating: iot-tune.npz, iot-test.npz)")
    live = REPO / "runs" / "captures" / "live"
    COMMANDS.append("python benchmarks/live_captures.py --out runs/captures/live --runs 30")
    if not (live / "test").is_dir():
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "live_captures.py"), "--out",
                        str(live), "--runs", "30"], check=True, cwd=REPO)
    live_tune = build(live / "tune", work / "live-tune.npz", "--preprocess", pre, "--split", "1,0,0")
    live_test = build(live / "test", work / "live-test.npz", "--preprocess", pre, "--split", "1,0,0")
    held = set(LOAO_TUNE) | set(LOAO_TEST)
    seen = links(work / "loao" / "seen", [p.name for p in (DATA / "iscx-apps").iterdir()
                                          if p.name not in held])
    kp = ["--taxonomy", str(TAXONOMY), "--repr", "kpackets", "--zero-ports"]
    loao_data = build(seen, work / "loao-seen.npz", *kp, "--split", "0.7,0.1,0.2")
    loao_tune = build(links(work / "loao" / "unseen-tune", LOAO_TUNE), work / "loao-unseen-tune.npz",
                      *kp, "--split", "1,0,0")
    loao_test = build(links(work / "loao" / "unseen-test", LOAO_TEST), work / "loao-unseen-test.npz",
                      *kp, "--split", "1,0,0")
    loao_model = work / "loao-tinykp"
    egw("train", "--model", "tinykp", "--data", str(loao_data), "--out", str(loao_model),
        "--seed", "0", "--no-progress", "--max-seconds", str(LOAO_SECONDS),
        needed=not (loao_model / "card.json").exists())
    card = json.loads((loao_model / "card.json").read_text())
    egw("ood", "fit", "--model", str(loao_model), "--data", str(loao_data), "--tune", str(loao_tune),
        needed=not fitted_on(card, {loao_tune.stem}))
    COMMANDS.append(f"egw ood fit --model {_rel(str(DEFAULT_BUNDLE_DIR))} --data {_rel(str(iscx))} "
                    f"--tune {_rel(str(iot_tune))} --tune {_rel(str(live_tune))}")
    dcard = json.loads((DEFAULT_BUNDLE_DIR / "card.json").read_text())
    if not fitted_on(dcard, {iot_tune.stem, live_tune.stem}):
        raise SystemExit(f"the default bundle's OOD part was not fitted on {iot_tune.stem} and "
                         f"{live_tune.stem}: run\n  egw ood fit --model {DEFAULT_BUNDLE_DIR} "
                         f"--data {iscx} --tune {iot_tune} --tune {live_tune}")
    return {"default": (DEFAULT_BUNDLE_DIR, iscx, {"iot": iot_test, "live": live_test}),
            "loao": (loao_model, loao_data, {"loao": loao_test})}


SOURCE_TEXT = {
    "iot": "IoT Sentinel devices (test half of the devices)",
    "live": "real tools in namespaces (test half of the runs)",
    "loao": "iscx-apps applications left out of training (test half of the applications)",
}


def scores(b, X):
    return b.ood_score(X), b.predict(X).max(1)


def evaluate_bundle(bdir: Path, data: Path, sources: dict) -> tuple[list[dict], dict]:
    b = load_bundle(bdir)
    ds = load_dataset(data)
    va, te = np.flatnonzero(ds.split == 1), np.flatnonzero(ds.split == 2)
    va, te = va[first_rows(ds.session[va])], te[first_rows(ds.session[te])]
    ov, pv = scores(b, ds.X[va])
    oi, pi = scores(b, ds.X[te])
    base_thr = float(np.quantile(pv, 0.05))
    rows, curves = [], {}
    for name, path in sources.items():
        u = load_dataset(path)
        rows_u = first_rows(u.session)
        ou, pu = scores(b, u.X[rows_u])
        kinds = np.array([u.labels[i] for i in u.y[rows_u]])
        per_kind = {k: {"sessions": int((kinds == k).sum()),
                        "caught": float((ou[kinds == k] > b.ood.threshold).mean())}
                    for k in sorted(set(kinds.tolist()))}
        rows.append({
            "source": name, "what": SOURCE_TEXT[name], "bundle": str(bdir.relative_to(REPO)),
            "in_distribution": f"{data.name} test split", "sessions": int(len(ou)),
            "in_sessions": int(len(oi)),
            "auroc": auroc(oi, ou), "caught": float((ou > b.ood.threshold).mean()),
            "in_rejected": float((oi > b.ood.threshold).mean()),
            "threshold": b.ood.threshold, "method": b.card["ood"]["name"],
            "baseline_max_probability": {"auroc": auroc(-pi, -pu),
                                         "caught": float((pu < base_thr).mean()),
                                         "in_rejected": float((pi < base_thr).mean())},
            "tuning": b.card["ood"]["tune"].get(f"{name}-tune") or
            b.card["ood"]["tune"].get(f"{name}-unseen-tune"),
            "per_kind": per_kind,
        })
        curves[name] = (oi, ou, -pi, -pu)
    return rows, curves


def roc(a, o):
    thr = np.unique(np.concatenate([a, o]))[::-1]
    fpr = [(a > t).mean() for t in thr] + [1.0]
    tpr = [(o > t).mean() for t in thr] + [1.0]
    return [0.0] + fpr, [0.0] + tpr


def plot(curves: dict, rows: list[dict]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for (name, (oi, ou, bi, bu)), r in zip(curves.items(), rows):
        line, = ax.plot(*roc(oi, ou), label=f"{name}: OOD score (AUROC {r['auroc']:.2f})")
        ax.plot(*roc(bi, bu), ls=":", color=line.get_color(),
                label=f"{name}: max-probability (AUROC {r['baseline_max_probability']['auroc']:.2f})")
    ax.axvline(0.05, color="grey", lw=0.8, ls="--")
    ax.plot([0, 1], [0, 1], color="lightgrey", lw=0.8)
    ax.set_xlabel("in-distribution test sessions rejected (false-positive rate)")
    ax.set_ylabel("unfamiliar test sessions caught")
    ax.set_title("Open set: ROC per unfamiliar source (test parts)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    OUT_PNG.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT_PNG, dpi=110)
    plt.close(fig)


def latency(bdir: Path, data: Path, runs: int = 2000) -> dict:
    """Median ms of one session (batch 1, one thread): the model alone, and classify
    (model + OOD score + decision, what the gateway calls)."""
    b = load_bundle(bdir)
    one = load_dataset(data).X[:1]
    out = {}
    for name, fn in (("model_ms", b.predict), ("classify_with_ood_ms", b.classify)):
        for _ in range(100):
            fn(one)
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            fn(one)
            ts.append(time.perf_counter() - t)
        out[name] = round(1000 * float(np.median(ts)), 4)
    out["loadavg_1m"] = round(os.getloadavg()[0], 2)
    out["cores"] = os.cpu_count()
    out["note"] = "LiteRT int8 model (1 thread) + float embedding model + numpy distances, batch 1, median of 2000"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=str(REPO / "runs" / "open_set"))
    ap.add_argument("--iscx", default=str(REPO / "runs" / "data" / "iscx6-kpackets-sess.npz"),
                    help="the default bundle's dataset (its card's data.manifest.argv builds it)")
    a = ap.parse_args(argv)
    t0 = time.time()
    plan = prepare(Path(a.work), Path(a.iscx))
    rows, curves = [], {}
    for bdir, data, sources in plan.values():
        r, c = evaluate_bundle(bdir, data, sources)
        rows += r
        curves.update(c)
    res = {
        "generated_by": "benchmarks/open_set.py",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.time() - t0, 1),
        "goal": {"caught": 0.9, "in_rejected": 0.05},
        "protocol": ("thresholds: each bundle's OOD threshold is the 0.95 quantile of its "
                     "validation sessions' scores; the method was chosen by `egw ood fit` on the "
                     "tuning parts; the test parts and in-distribution test splits were read once, "
                     "here, for these figures. Sessions are counted once (first usable row)."),
        "commands": COMMANDS,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rows": rows,
        "latency_default": latency(DEFAULT_BUNDLE_DIR, Path(a.iscx)),
    }
    OUT_JSON.write_text(json.dumps(res, indent=2) + "\n")
    plot(curves, rows)
    for r in rows:
        print(f"{r['source']}: {r['sessions']} sessions, AUROC {r['auroc']:.3f}, caught "
              f"{r['caught']:.1%} at {r['in_rejected']:.1%} in-distribution rejected "
              f"(max-probability: {r['baseline_max_probability']['caught']:.1%})")
    print(f"default bundle per session: {res['latency_default']}")
    print(f"wrote {OUT_JSON.relative_to(REPO)}, {OUT_PNG.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
