#!/usr/bin/env python3
"""LiteRT inference latency of model bundles (float and int8), as the gateway runs them.

    .venv/bin/python benchmarks/bench_inference.py                  # the embedded default model
    .venv/bin/python benchmarks/bench_inference.py runs/models/*     # any bundle directories
    .venv/bin/python benchmarks/bench_inference.py classifier/models/default \
        classifier/models/devices --json docs/results/inference.json  # docs/benchmarks.md

Per bundle and model file: median and p99 single-sample latency of ``Bundle.predict``
(batch 1, one thread, input (de)quantisation included), the per-sample time in
batches of 64, and for bundles with an OOD part the median of ``Bundle.classify``
(model + OOD score + decision, what the gateway calls). No TensorFlow is imported.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.bundle import DEFAULT_BUNDLE_DIR, BundleError, load_bundle  # noqa: E402


def bench(bundle, runs: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 256, (64, *bundle.feature_shape)) / 255).astype(np.float32)
    one = x[:1]
    for _ in range(50):
        bundle.predict(one)
    ts = np.empty(runs)
    for i in range(runs):
        t = time.perf_counter()
        bundle.predict(one)
        ts[i] = time.perf_counter() - t
    bundle.predict(x)
    reps = max(5, runs // 64)
    t = time.perf_counter()
    for _ in range(reps):
        bundle.predict(x)
    batch = (time.perf_counter() - t) / (reps * len(x))
    res = {"median_ms": 1000 * float(np.median(ts)), "p99_ms": 1000 * float(np.quantile(ts, 0.99)),
           "batch64_ms_per_sample": 1000 * batch}
    if bundle.ood is not None:       # what the gateway calls: model + OOD score + decision
        tc = np.empty(runs)
        for i in range(runs):
            t = time.perf_counter()
            bundle.classify(one)
            tc[i] = time.perf_counter() - t
        res["classify_median_ms"] = 1000 * float(np.median(tc))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundles", nargs="*", default=[str(DEFAULT_BUNDLE_DIR)])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--json", metavar="OUT", help="also write the rows and the machine's load "
                    "as JSON (docs/results/inference.json renders docs/benchmarks.md's table)")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = []
    t = time.perf_counter()
    import ai_edge_litert.interpreter  # noqa: F401
    print(f"import ai_edge_litert: {1000 * (time.perf_counter() - t):.1f} ms")
    print(f"{'bundle':<34} {'model':<8} {'file':>18} {'bytes':>8} {'median ms':>10} {'p99 ms':>8} "
          f"{'b64 ms/sample':>14} {'+OOD ms':>8}")
    for d in args.bundles:
        if not (Path(d) / "labels.json").exists():
            continue
        for int8 in (False, True):
            try:
                b = load_bundle(d, prefer_int8=int8)
            except BundleError as exc:
                print(f"{d}: {exc}")
                continue
            if b.quantized != int8:
                continue
            r = bench(b, args.runs)
            name = Path(d).name if Path(d) != DEFAULT_BUNDLE_DIR else "default"
            rows.append({"bundle": name, "model": b.card.get("model", "?"),
                         "representation": b.preprocess.repr, "file": b.model_file.name,
                         "int8": bool(int8), "bytes": b.model_file.stat().st_size,
                         **{k: round(v, 4) for k, v in r.items()}})
            print(f"{name:<34} {b.card.get('model', '?'):<8} {b.model_file.name:>18} "
                  f"{b.model_file.stat().st_size:>8} {r['median_ms']:>10.4f} {r['p99_ms']:>8.4f} "
                  f"{r['batch64_ms_per_sample']:>14.4f} "
                  + (f"{r['classify_median_ms']:>8.4f}" if "classify_median_ms" in r else f"{'–':>8}"))
    if args.json:
        out = {"generated_by": "benchmarks/bench_inference.py",
               "command": "benchmarks/bench_inference.py " + " ".join(argv or sys.argv[1:]),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": args.runs,
               "machine": {"cpu": platform.machine(), "cores": os.cpu_count(),
                           "loadavg_1m_before": round(load_before, 2),
                           "loadavg_1m_after": round(os.getloadavg()[0], 2)},
               "rows": rows}
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
