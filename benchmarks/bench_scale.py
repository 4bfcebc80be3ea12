"""Speed-up of the offline work from 1 to 2 local workers, and on Ray (docs/scale.md).

Measures, on this machine:
  * ``egw dataset build`` of the iscx-apps captures (the docs' kpackets recipe) with 1 and
    2 local worker processes and with ``--ray`` (a local Ray instance), checking that all
    three write the same arrays; the per-file cost (the driver's own time is the rest);
  * one NAS generation (``population`` children, the pure ``fitness`` function) with the
    children trained in this process (1 worker), in 2 worker processes and as Ray tasks,
    after the workers are started (their start-up is measured apart);
  * what a fleet rollout moves and waits for: the default bundle's bytes and the time to
    load it (the gateway's reload path: LiteRT, no TensorFlow).
and writes docs/results/scale.json (rendered into docs/scale.md by benchmarks/models_doc.py).

    nice -n 10 .venv/bin/python benchmarks/bench_scale.py            # about 5 minutes here
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
ISCX = DATA / "iscx-apps"
TAXONOMY = DATA / "taxonomy-iscx-traffic-types.yaml"
OUT = REPO / "docs" / "results" / "scale.json"


def _build(out: Path, jobs: int, ray: str | None, repr_: str = "kpackets",
           max_per_class: int | None = None) -> float:
    from classifier.build import build_from_captures
    from classifier.cli import preprocess_from_args
    from egw_cli.main import build_parser

    # the docs' recipe: --repr kpackets --zero-ports, the CLI's defaults otherwise
    pre = preprocess_from_args(build_parser().parse_args(
        ["dataset", "build", "--input", str(ISCX), "--repr", repr_, "--zero-ports", "--out", "x.npz"]))
    t = time.perf_counter()
    build_from_captures(ISCX, out, pre, TAXONOMY, max_per_class=max_per_class, jobs=jobs,
                        fractions=(0.7, 0.1, 0.2), min_files=1_000_000, progress=False, ray=ray)
    return time.perf_counter() - t


def file_work_seconds(files) -> float:
    """The per-file work alone (read, split, vectorize: what a worker or Ray task does),
    one file after the other in this process: the part that parallelises."""
    from classifier.build import process_file
    from classifier.cli import preprocess_from_args
    from egw_cli.main import build_parser

    pre = preprocess_from_args(build_parser().parse_args(
        ["dataset", "build", "--input", str(ISCX), "--repr", "kpackets", "--zero-ports", "--out", "x.npz"]))
    return sum(process_file((i, str(f), pre.to_dict(), False)).seconds for i, f in enumerate(files))


def dataset_build(tmp: Path, repeats: int) -> dict:
    from classifier.build import find_captures

    files = [f for fs in find_captures(ISCX).values() for f in fs]
    work = statistics.median(file_work_seconds(files) for _ in range(repeats))
    runs = {}
    arrays = {}
    ray_start = None
    for name, jobs, ray in (("1 worker", 1, None), ("2 workers", 2, None), ("ray, 2 CPUs", 2, "local")):
        secs = []
        if ray:      # connect first: the builds reuse the connection; start-up apart
            from classifier.cluster import RayPool
            t = time.perf_counter()
            pool = RayPool(ray)
            ray_start = time.perf_counter() - t
        for r in range(repeats):
            out = tmp / f"build-{jobs}-{ray}-{r}.npz"
            secs.append(_build(out, jobs, ray))
            print(f"dataset build, {name}: {secs[-1]:.2f} s", flush=True)
        if ray:
            pool.close()
        with np.load(out) as z:
            arrays[name] = {k: z[k] for k in z.files if k != "manifest"}
            manifest = json.loads(str(z["manifest"]))
        runs[name] = {"seconds": round(statistics.median(secs), 2), "runs": [round(s, 2) for s in secs],
                      "load_average_1min": round(os.getloadavg()[0], 2)}
    ref = arrays["1 worker"]
    identical = all(all(np.array_equal(ref[k], a[k]) for k in ref) for a in arrays.values())
    one = runs["1 worker"]["seconds"]
    return {"files": len(files), "bytes": sum(f.stat().st_size for f in files),
            "packets": manifest["packets_read"], "samples": int(len(ref["y"])),
            "runs": runs, "identical_arrays": identical,
            "speedup_2_workers": round(one / runs["2 workers"]["seconds"], 2),
            "speedup_ray": round(one / runs["ray, 2 CPUs"]["seconds"], 2),
            "ray_start_seconds": round(ray_start, 2),
            "file_work_seconds": round(work, 2),
            "seconds_per_file": round(work / len(files), 4),
            "seconds_per_mb": round(work / (sum(f.stat().st_size for f in files) / 1e6), 4),
            "driver_seconds": round(one - work, 2)}


def nas_generation(tmp: Path, population: int, epochs: int) -> dict:
    from classifier.dataset import load_dataset
    from classifier.nn import tiny_nas

    path = tmp / "nas.npz"
    _build(path, 2, None, repr_="session784", max_per_class=150)
    ds = load_dataset(path)
    tr = np.where(ds.split == 0)[0]
    rng = np.random.default_rng(0)
    fit, hold = tiny_nas._holdout(len(tr), ds.session[tr], rng)
    data = {"Xtr": ds.X[tr][fit], "ytr": ds.y[tr][fit], "Xva": ds.X[tr][hold], "yva": ds.y[tr][hold]}
    shape, k = tuple(ds.X.shape[1:]), len(ds.labels)
    settings = {"input_shape": list(shape), "n_classes": k, "epochs": epochs, "batch_size": 64,
                "learning_rate": 1e-3, "patience": epochs, "seed": 0, "class_weight": {}}
    kids = []
    while len(kids) < population:
        child, _ = tiny_nas.mutate(tiny_nas.TINY_DEFAULT, rng)
        if tiny_nas.check_limits(child, shape, k)[0]:
            kids.append(child)
    runs = {}
    for name, workers, ray in (("1 worker", 1, None), ("2 workers", 2, None), ("ray, 2 CPUs", 1, "local")):
        t = time.perf_counter()
        ev = tiny_nas.Evaluator(data, workers, ray)
        try:
            ev.map([tiny_nas.TINY_DEFAULT] * (1 if workers == 1 and not ray else 2),
                   dict(settings, epochs=1))         # start (and warm) every worker
            start = time.perf_counter() - t
            t = time.perf_counter()
            res = ev.map(kids, settings)
            gen = time.perf_counter() - t
        finally:
            ev.close()
        runs[name] = {"seconds": round(gen, 2), "startup_seconds": round(start, 2),
                      "load_average_1min": round(os.getloadavg()[0], 2),
                      "child_seconds": [r["seconds"] for r in res],
                      "val_macro_f1": [round(r["val_macro_f1"], 4) for r in res]}
        print(f"NAS generation of {population}, {name}: {gen:.1f} s (start-up {start:.1f} s)",
              flush=True)
    one = runs["1 worker"]["seconds"]
    return {"population": population, "epochs": epochs, "train_rows": int(len(data["ytr"])),
            "input": list(shape), "runs": runs,
            "speedup_2_workers": round(one / runs["2 workers"]["seconds"], 2),
            "speedup_ray": round(one / runs["ray, 2 CPUs"]["seconds"], 2),
            "seconds_per_child_1_worker": round(one / population, 2)}


def bundle_rollout() -> dict:
    from classifier.bundle import DEFAULT_BUNDLE_DIR, load_bundle

    d = Path(DEFAULT_BUNDLE_DIR)
    files = {p.name: p.stat().st_size for p in sorted(d.iterdir()) if p.is_file()}
    runtime = ("model.int8.tflite", "model.tflite", "labels.json", "preprocess.json", "card.json")
    secs = []
    for _ in range(5):
        t = time.perf_counter()
        b = load_bundle(d)
        b.predict(np.zeros((1, *b.preprocess.sample_shape), np.float32))
        secs.append(time.perf_counter() - t)
    return {"bundle_bytes": sum(files.values()),
            "runtime_bytes": sum(v for k, v in files.items() if k in runtime),
            "int8_model_bytes": files.get("model.int8.tflite"),
            "load_seconds_median": round(statistics.median(secs), 4), "files": files}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--population", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args(argv)
    if not ISCX.is_dir():
        print(f"{ISCX}: not found (the shared iscx-apps captures)", file=sys.stderr)
        return 2
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="egw-scale-") as tmp:
        build = dataset_build(Path(tmp), a.repeats)
        nas = nas_generation(Path(tmp), a.population, a.epochs)
    res = {"hardware": {"cpu": platform.processor() or platform.machine(),
                        "cores_allowed": len(os.sched_getaffinity(0)),
                        "load_average_before": [round(x, 2) for x in load0],
                        "load_average_after": [round(x, 2) for x in os.getloadavg()]},
           "ray_version": __import__("ray").__version__,
           "dataset_build": build, "nas_generation": nas, "bundle": bundle_rollout(),
           "command": "benchmarks/bench_scale.py " + " ".join(argv or sys.argv[1:])}
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
