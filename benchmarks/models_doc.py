"""Render docs/models.md's result tables and plots from the committed JSON in docs/results/.

Each table sits between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` in
docs/models.md; ``render_file()`` rewrites those blocks, ``check_file()`` returns the
blocks that disagree with their JSON (the unit test fails on any). Nothing in a block
is typed by hand.

    .venv/bin/python benchmarks/models_doc.py          # re-render tables and plots
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import docblocks

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
DOC = REPO / "docs" / "models.md"
DOCS = (DOC, REPO / "docs" / "smart_home.md", REPO / "docs" / "scale.md", REPO / "README.md",
        REPO / "docs" / "benchmarks.md")
IMG = REPO / "docs" / "img" / "models"
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)",
                   re.S)


def _load(name: str) -> dict | None:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _kb(n) -> str:
    return f"{n / 1000:.0f}"


def _f(x, nd=3) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def families_table(res: dict) -> str:
    rows = res["rows"]
    best_tree = max((r["test_macro_f1_int8"] for r in rows if r["model"] in ("forest", "boosted", "cart")),
                    default=None)
    out = ["| family | input | budget | train s | epochs / candidates | params | FLOPs | flash kB float / int8 "
           "| ms int8 | val macro-F1 int8 | **test macro-F1 int8** (float) | int8/float agree |",
           "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|---:|"]
    for r in sorted(rows, key=lambda r: -r["test_macro_f1_int8"]):
        mark = "**" if best_tree is not None and r["test_macro_f1_int8"] >= best_tree else ""
        ep = r.get("epochs_run")
        ep = "–" if ep is None else f"{ep}" + (" (budget hit)" if r.get("budget_exhausted") else "")
        out.append(
            f"| `{r['name']}` | {r['input']} | {r['budget']} | {r['train_seconds']:.0f} | {ep} | "
            f"{r['params']:,} | {r['flops']:,} | {_kb(r['flash_float'])} / {_kb(r['flash_int8'])} | "
            f"{r['latency_ms_int8']:.3f} | {_f(r['val_macro_f1_int8'])} | "
            f"{mark}{_f(r['test_macro_f1_int8'])}{mark} ({_f(r['test_macro_f1_float'])}) | "
            f"{100 * r['int8_float_agreement']:.1f} % |")
    n = sorted({r["test_sessions"] for r in rows})
    out.append("")
    out.append(f"Test sessions: {', '.join(map(str, n))} (per-packet models score the session's first "
               f"usable packet, as the gateway does). Bold: at least the best tree model's test "
               f"macro-F1. Machine: {res['hardware']['cpu']}, {res['hardware']['cores_allowed']} cores, "
               f"no GPU; finished {res['finished']}.")
    notes = [f"`{r['name']}`: {r['note']}" for r in rows if r.get("note")]
    if notes:
        out.append("")
        out += [f"- {x}" for x in notes]
    return "\n".join(out)


def label_table(res: dict) -> str:
    pts = res["points"]
    models = [m for m in ("bytesgan", "cnn", "tiny", "forest") if any(p["model"] == m for p in pts)]
    sizes = sorted({p["labels_per_class"] or 10 ** 9 for p in pts})
    out = ["| labels per class | " + " | ".join(f"`{m}`" for m in models) + " |",
           "|---:|" + "---:|" * len(models)]
    for n in sizes:
        cells = []
        for m in models:
            p = next((p for p in pts if p["model"] == m and (p["labels_per_class"] or 10 ** 9) == n), None)
            cells.append("–" if p is None else _f(p["test_macro_f1_int8"]))
        out.append(f"| {'all' if n == 10 ** 9 else n} | " + " | ".join(cells) + " |")
    b = {p["model"]: p["budget"] for p in pts}
    out.append("")
    out.append("Test macro-F1 (int8 LiteRT, per session, first usable packet). Budgets: "
               + "; ".join(f"`{m}` {b[m]}" for m in models)
               + ". ByteSGAN gets every other training packet as unlabelled data.")
    return "\n".join(out)


def min_confidence_table(res: dict) -> str:
    out = ["| class | precision at threshold (val) | sessions kept (val) | `min_confidence` |",
           "|---|---:|---:|---:|"]
    for c, r in res["classes"].items():
        out.append(f"| {c} | {_f(r['precision'])} | {r['kept']}/{r['n_predicted']} | "
                   f"{_f(r['min_confidence'], 2)} |")
    out.append("")
    out.append(f"Rule: {res['rule']}")
    return "\n".join(out)


def selection_table(res: dict) -> str:
    out = ["| variant | what | params | FLOPs | val macro-F1 int8 (float) |", "|---|---|---:|---:|---|"]
    for r in res["rows"]:
        mark = "**" if r["variant"] == res["chosen"] else ""
        out.append(f"| {mark}{r['variant']}{mark} | {r['what']} | {r['params']:,} | {r['flops']:,} | "
                   f"{_f(r['val_macro_f1_int8'])} ({_f(r['val_macro_f1_float'])}) |")
    out.append("")
    out.append(f"Split: {res['split']}. Rule: {res['rule']}.")
    reads = res.get("test_reads") or []
    if reads:
        out.append("")
        out.append("Test figures seen, disclosed and not used to choose: " + "; ".join(
            f"{r['variant']} {r['test_macro_f1_int8']:.3f} ({r['why']})" for r in reads) + ".")
    return "\n".join(out)


def smart_home_confusion(res: dict) -> str:
    t = res["replay"]["classification"]
    labels = t["labels"]
    out = [f"{t['correct']} of {t['total']} held-out sessions labelled right "
           f"({100 * t['correct'] / max(1, t['total']):.0f} %; model `{res['model']['family']}`).", "",
           "| true \\ gateway | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for true_label, row in t["matrix"].items():
        out.append(f"| {true_label} | " + " | ".join(str(row.get(c, 0)) for c in labels) + " |")
    return "\n".join(out)


def smart_home_priority(res: dict) -> str:
    out = ["| run | probe p50 ms | p95 ms | p99 ms | received/sent | bulk Mbit/s | bulk share of the uplink |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for name, key in (("with the policy", "policy"), ("baseline (no QoS)", "baseline")):
        r = res[key]
        out.append(f"| {name} | {r['probe_p50_ms']:.2f} | {r['probe_p95_ms']:.2f} | {r['probe_p99_ms']:.2f} | "
                   f"{r['probe_received']}/{r['probe_sent']} | {r['bulk_mbps']:.1f} | {r['bulk_share']:.2f} |")
    e = res["enforcement"]
    out += ["", f"The probe's p95 latency without the policy is **{res['latency_p95_ratio_baseline_over_policy']:.1f}x** "
            f"that with it. Drop: {e['dropped_sessions']} sessions dropped, "
            f"{e['packets_after_drop_decision']} packets after the decision. Meter: the camera at "
            f"{e['camera_mbps_before_change']:.2f} Mbit/s under {e['camera_meter_kbps_before']} kbit/s, then "
            f"{e['camera_mbps_after_change']:.2f} Mbit/s under {e['camera_meter_kbps_after']} kbit/s after the "
            f"live policy change. Run wall time {res['wall_s']:.0f} s."]
    return "\n".join(out)


def smart_home_flows(res: dict) -> str:
    out = ["| flow | proto | class | confidence | OOD score | policy entry | DSCP | meter kbit/s |",
           "|---|---|---|---:|---:|---|---:|---:|"]
    for f in res["live_flows"]:
        c, o = f["confidence"], f.get("ood_score")
        out.append(f"| {f['flow']} | {f['proto']} | {f['class']} | {'' if c is None else f'{c:.2f}'} | "
                   f"{'–' if o is None else f'{o:.2f}'} | "
                   f"{f['policy_entry']} | {f['dscp'] if f['dscp'] is not None else ''} | "
                   f"{f['rate_kbps'] or ''} |")
    return "\n".join(out)


def smart_home_idle(res: dict) -> str:
    out = ["| phase | probe p50 ms | p95 ms | p99 ms | received/sent |", "|---|---:|---:|---:|---:|"]
    for name, key in (("idle (probe alone)", "idle"), ("saturated, with the policy", "policy"),
                      ("saturated, baseline (no QoS)", "baseline")):
        r = res[key]
        out.append(f"| {name} | {r['probe_p50_ms']:.2f} | {r['probe_p95_ms']:.2f} | "
                   f"{r['probe_p99_ms']:.2f} | {r['probe_received']}/{r['probe_sent']} |")
    ratio, goal = res["latency_p95_ratio_policy_over_idle"], res["latency_p95_goal_policy_over_idle"]
    out += ["", f"Probe p95 with the policy under the saturated uplink / idle: **{ratio:.2f}x** "
            f"(goal ≤ {goal:.0f}x: {'met' if ratio <= goal else 'not met'}); baseline / idle: "
            f"{res['latency_p95_ratio_baseline_over_idle']:.1f}x."]
    cpu = res.get("cpu") or {}
    if cpu:
        out += ["", "| phase | s | machine busy (2 cores = 100 %) | load 1m | ovs-vswitchd, % of a core "
                "| its busiest threads | ryu-manager, % of a core |", "|---|---:|---:|---:|---:|---|---:|"]
        for phase, c in cpu.items():
            p = c["processes"]
            top = ", ".join(f"`{t['thread']}` {t['cpu_percent']:.0f}"
                            for t in p["ovs-vswitchd"]["threads"][:3] if t["cpu_percent"] >= 1)
            out.append(f"| {phase} | {c['wall_s']:.0f} | {c['machine_busy_percent']:.0f} % | "
                       f"{c['loadavg_1m']:.1f} | {p['ovs-vswitchd']['cpu_percent']:.0f} | {top} | "
                       f"{p['ryu-manager']['cpu_percent']:.0f} |")
    return "\n".join(out)


def smart_home_decision(res: dict) -> str:
    out = ["| replayed class | sessions | budget filled | first packet → decision, ms (median / p95 / max) "
           "| packet-ins to it (median / max) |", "|---|---:|---:|---|---|"]
    for r in res["time_to_decision"]["rows"]:
        name = "**all**" if r["class"] == "all" else r["class"]
        out.append(f"| {name} | {r['sessions']} | {r['filled']} | {r['median_ms']:,.0f} / "
                   f"{r['p95_ms']:,.0f} / {r['max_ms']:,.0f} | {r['median_packets']:g} / "
                   f"{r['max_packets']} |")
    live = [f for f in res["live_flows"] if f.get("decision_ms") is not None]
    if live:
        out += ["", "Live flows, same run: " + "; ".join(
            f"{f['flow']} ({f['proto']}) {f['decision_ms']:,.0f} ms, {f['mirrored_packets']} packet-ins"
            for f in live) + "."]
    return "\n".join(out)


def smart_home_devices(res: dict) -> str:
    dev = res.get("devices")
    if not dev:
        return ("Not in this run: `docs/results/smart_home.json` predates the devices run; the "
                "next `egw emulate` run's `results.json` fills this table.")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from topologies.report import devices_table

    return "\n".join([f"Source: {dev['source']}; the run took {dev['wall_s']:.0f} s.", "",
                      *devices_table(dev)])


def audit_table(res: dict) -> str:
    p, imp = res["probe"], res["importance"]
    out = ["| field | macro-F1 drop when shuffled | samples with it |", "|---|---:|---:|"]
    for r in imp["fields"][:12]:
        out.append(f"| `{r['field']}` | {r['macro_f1_drop']:+.3f} | {r['samples_with_field']} |")
    out += ["", f"`{res['command']}`: the bundle scores {imp['baseline_macro_f1']:.3f} macro-F1 on "
            f"{imp['scored_on']} ({imp['repeats']} shuffles per field; top 12 of {len(imp['fields'])} "
            f"fields). Shortcut probe ({p['header']}, payload blanked): macro-F1 {p['macro_f1']:.3f} "
            f"(majority class {p['majority_macro_f1']:.3f}); header fields still varying after "
            f"masking: {', '.join(p['varying_fields'])}."]
    return "\n".join(out)


def fairness_table(res: dict) -> str:
    out = ["| per-device quota | flood: new sessions sent (rate) | packet-ins at the app: "
           "mirror / overload | controller meter dropped | rt1 voip: class | rt1 voip packets "
           "before its EF rule | rt1 p2p packets through during the flood |",
           "|---|---:|---:|---:|---|---:|---:|"]
    for r in res["runs"]:
        v = r["voip"] or {}
        quota = (f"on ({r['device_session_rate']:.0f}/s, burst {r['device_session_burst']})"
                 if r["quota"] else "off")
        out.append(f"| {quota} | {r['sent']} ({r['achieved_rate']}/s) | "
                   f"{r['packet_ins']['mirror']} / {r['packet_ins']['overload']} | "
                   f"{r['controller_meter_dropped']} | {v.get('class')} ({v.get('reason')}) | "
                   f"{r['voip_before_ef']} | {r['arrived']['p2p_during']} |")
    r0 = res["runs"][0]
    out += ["", f"`{res['command']}` ({res['date']}, {res['model']}; packet-in meter "
            f"{r0['packet_in_rate']}/s, on_overload: {r0['on_overload']})."]
    return "\n".join(out)


def _speedup_rows(runs: dict, one: float, extra=None) -> list[str]:
    out = []
    for name, r in runs.items():
        more = f" | {extra(r)}" if extra else ""
        out.append(f"| {name} | {r['seconds']:.2f} | {one / r['seconds']:.2f}× | "
                   f"{r.get('load_average_1min', '–')}{more} |")
    return out


def scale_build_table(res: dict) -> str:
    b = res["dataset_build"]
    one = b["runs"]["1 worker"]["seconds"]
    out = ["| per-file work runs in | build s (median) | speed-up | load (1 min) |",
           "|---|---:|---:|---:|", *_speedup_rows(b["runs"], one), "",
           f"{b['files']} capture files, {b['bytes'] / 1e6:.1f} MB, {b['packets']:,} packets → "
           f"{b['samples']:,} samples; the three builds wrote "
           f"{'identical' if b['identical_arrays'] else 'DIFFERENT'} arrays. Per-file work "
           f"(read, split, vectorize) alone: {b['file_work_seconds']:.2f} s "
           f"({1000 * b['seconds_per_file']:.0f} ms per file, {1000 * b['seconds_per_mb']:.0f} ms "
           f"per MB); the driver's own part (find files, cap, split, write): "
           f"{b['driver_seconds']:.2f} s; connecting a local Ray: {b['ray_start_seconds']:.1f} s "
           f"(not in the Ray row). Machine: {res['hardware']['cores_allowed']} cores shared with "
           f"other work (load average {res['hardware']['load_average_before'][0]} before, "
           f"{res['hardware']['load_average_after'][0]} after), Ray {res['ray_version']}."]
    return "\n".join(out)


def scale_nas_table(res: dict) -> str:
    n = res["nas_generation"]
    one = n["runs"]["1 worker"]["seconds"]
    out = ["| children train in | generation s | speed-up | load (1 min) | workers' start-up s "
           "| each child s |", "|---|---:|---:|---:|---:|---|",
           *_speedup_rows(n["runs"], one, lambda r: f"{r['startup_seconds']:.1f} | "
                          + ", ".join(f"{c:.1f}" for c in r["child_seconds"])), "",
           f"One generation of {n['population']} children (mutations of the tiny default), "
           f"{n['epochs']} epochs each on {n['train_rows']} session784 rows; 1 worker: in the "
           f"driver's process with TensorFlow's default threads; 2 workers and Ray: one "
           f"TensorFlow thread per worker. Per child at 1 worker: "
           f"{n['seconds_per_child_1_worker']:.1f} s."]
    return "\n".join(out)


FULL_ISCX_GB = 28      # the full ISCX VPN-nonVPN captures (the corpus the issue names)
NAS_POPULATION = 32    # a generation of a real search


def scale_extrapolation_table(res: dict) -> str:
    b, n = res["dataset_build"], res["nas_generation"]
    per_mb, driver = b["seconds_per_mb"], b["driver_seconds"] / b["bytes"] * 1e6
    start = b["ray_start_seconds"]
    child = max(c for r in n["runs"].values() for c in r["child_seconds"])
    out = [f"| nodes × 2 cores | build of {FULL_ISCX_GB} GB (h) | NAS generation of "
           f"{NAS_POPULATION} children (min) |", "|---:|---:|---:|"]
    for nodes in (1, 2, 4, 8, 16, 32):
        cores = 2 * nodes
        mb = FULL_ISCX_GB * 1000
        build_h = (mb * per_mb / cores + mb * driver + start) / 3600
        gen_min = -(-NAS_POPULATION // cores) * child / 60
        out.append(f"| {nodes} × 2 | {build_h:.2f} | {gen_min:.1f} |")
    out += ["", f"Cost model: build = per-file work ({1000 * per_mb:.0f} ms per MB) ÷ cores + the "
            f"driver's part ({1000 * driver:.1f} ms per MB, one process) + Ray start-up "
            f"({start:.0f} s); a generation = ⌈children ÷ cores⌉ × the slowest measured child "
            f"({child:.1f} s; a real search's children train longer: scale it by epochs × rows)."]
    return "\n".join(out)


def scale_bundle_table(res: dict) -> str:
    b = res["bundle"]
    return "\n".join([
        "| what | bytes |", "|---|---:|",
        f"| default bundle directory (with plots, Keras model, held-out list) | {b['bundle_bytes']:,} |",
        f"| what a gateway loads (model.tflite, model.int8.tflite, labels, preprocess, card) | "
        f"{b['runtime_bytes']:,} |",
        f"| model.int8.tflite alone | {b['int8_model_bytes']:,} |", "",
        f"Loading the bundle and a first prediction (the gateway's reload path, LiteRT): "
        f"{1000 * b['load_seconds_median']:.0f} ms (median of 5)."])


def fleet_table(res: dict) -> str:
    out = ["| home | egw_* series | samples per scrape | policy reload round trip (ms, median of 5) "
           "| sessions classified | shed | controller-meter drops |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for home, g in sorted(res["per_gateway"].items()):
        r = res["rest_at_end"][home]
        out.append(f"| {home} | {g['egw_series']} | {g['samples']} | "
                   f"{res['policy_reload_ms_median'][home]:.1f} | {r['classified']} | {r['shed']} | "
                   f"{r['packet_in_meter_dropped']} |")
    out += ["", f"{res['waves']} waves of replayed sessions over {res['seconds']:.0f} s, scraped "
            f"every {res['scrape_interval']}; home2 runs with "
            f"`{' '.join(res['home_flags']['home2'])}`."]
    return "\n".join(out)


SERIES_PER_PROMETHEUS = 2_000_000   # active series one Prometheus server holds comfortably


def fleet_sizing_table(res: dict) -> str:
    scale = _load("scale") or {}
    bundle = scale.get("bundle", {}).get("runtime_bytes")
    series = max(g["egw_series"] for g in res["per_gateway"].values())
    samples = max(g["samples"] for g in res["per_gateway"].values())
    out = ["| gateways | one bundle rollout (GB moved) | active series | samples/s at a 15 s "
           "scrape | Prometheus servers (≤ 2 M series each) |", "|---:|---:|---:|---:|---:|"]
    for n in (1_000, 10_000, 100_000, 1_000_000):
        moved = "–" if bundle is None else f"{n * bundle / 1e9:.2f}"
        out.append(f"| {n:,} | {moved} | {n * series:,} | {n * samples / 15:,.0f} | "
                   f"{-(-n * series // SERIES_PER_PROMETHEUS)} |")
    out += ["", f"Per gateway: {series} egw_* series, {samples} samples per scrape (the larger of the "
            f"two emulated homes; Prometheus adds 5 series of its own per target), "
            + ("" if bundle is None else f"{bundle:,} bundle bytes (docs/results/scale.json); ")
            + "a home with more classes or kinds of error has a few more series."]
    return "\n".join(out)


def open_set_table(res: dict) -> str:
    g = res["goal"]
    out = ["| source | bundle (OOD method) | unfamiliar test sessions | AUROC | **caught** | "
           "in-distribution rejected | max-probability: AUROC / caught / rejected | tuning part: "
           "sessions / caught |",
           "|---|---|---:|---:|---:|---:|---|---|"]
    for r in res["rows"]:
        b, t = r["baseline_max_probability"], r.get("tuning") or {}
        out.append(
            f"| {r['what']} | `{r['bundle']}` ({r['method']}) | {r['sessions']:,} | "
            f"{r['auroc']:.3f} | **{100 * r['caught']:.1f} %** | {100 * r['in_rejected']:.1f} % "
            f"of {r['in_sessions']:,} | {b['auroc']:.3f} / {100 * b['caught']:.1f} % / "
            f"{100 * b['in_rejected']:.1f} % | {t.get('sessions', '–')} / "
            f"{100 * t['caught']:.1f} % |" if t else "| – |")
    met = [r["source"] for r in res["rows"]
           if r["caught"] >= g["caught"] and r["in_rejected"] <= g["in_rejected"]]
    kinds = "; ".join(f"{r['source']}: " + ", ".join(f"{k} {100 * v['caught']:.0f} % of {v['sessions']}"
                                                     for k, v in r["per_kind"].items())
                      for r in res["rows"] if r["source"] != "iot")
    lat = res["latency_default"]
    out += ["", f"Goal: at least {100 * g['caught']:.0f} % caught with at most "
            f"{100 * g['in_rejected']:.0f} % of in-distribution sessions rejected: "
            + (f"met for {', '.join(met)}." if met else "**not met** for any source.")
            + f" Per kind of traffic: {kinds}. Cost per session (default bundle, batch 1): model "
            f"{lat['model_ms']:.3f} ms, model + OOD score + decision {lat['classify_with_ood_ms']:.3f} ms"
            + (f" (median; machine load average {lat['loadavg_1m']} on {lat['cores']} cores)"
               if "loadavg_1m" in lat else "") + ". "
            f"Finished {res['finished']}."]
    return "\n".join(out)


def devices_table(res: dict) -> str:
    out = ["| family | k × windows | **test accuracy per capture** | test macro-F1 | captures "
           "| params | flash kB int8 | ms int8 per window |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        out.append(f"| `{r['model']}`{' (main)' if r is res['rows'][0] else ''} | "
                   f"{r['k']} × {r['windows']} | {_f(r['test_accuracy'])} | {_f(r['test_macro_f1'])} | "
                   f"{r['test_captures']} | {r['params']:,} | {_kb(r['flash_int8'])} | "
                   f"{r['latency_ms_int8']:.3f} |")
    m = res["main"]
    pw = m["per_window"]
    out += ["", f"{res['types']} device types, {res['test_captures']} held-out captures "
            f"(split by capture, seed {res['data']['seed']}, {res['data']['split']}); "
            f"{m['rule']}. Per window (the main model): accuracy {_f(pw['accuracy'])} over "
            f"{pw['n']} windows. Per capture by kind (camera, plug, hub, sensor, light, "
            f"appliance): accuracy {_f(m.get('per_capture_kind_accuracy'))}. Goal "
            f"{res['goal']['per_capture_accuracy']:.2f}: "
            f"{'met' if res['goal']['met'] else 'not met'}. {res['reference']}. "
            f"Test read{'s:' if isinstance(res['test_reads'], list) else ''} {_test_reads(res)}; "
            f"finished {res['finished']}."]
    im = res.get("identity_mask")
    if im:
        out += ["", f"Identity mask: it changed {im['ip_packets_changed']:,} of the device's IP "
                f"packets read for the windows ({im['usable_packets']:,} usable packets) in "
                f"{im['captures_changed']} of {im['captures']} captures."]
    return "\n".join(out)


def devices_selection(res: dict) -> str:
    sel = res["selection"]
    out = ["| round | k (packets per window) | windows | packets | training seed "
           "| val accuracy per capture | val macro-F1 | captures |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def same(r, c):
        return (r.get("round", 1), r["k"], r["windows"], r.get("seed", 0)) == \
            (c.get("round", 1), c["k"], c["windows"], c.get("seed", 0))

    for r in sel["candidates"]:
        mark = "**" if same(r, sel["chosen"]) else ""
        out.append(f"| {r.get('round', 1)} | {r['k']} | {r['windows']} | {r['k'] * r['windows']} | "
                   f"{r.get('seed', 0)} | {mark}{_f(r['val_accuracy'])}{mark} | "
                   f"{_f(r['val_macro_f1'])} | {r['val_captures']} |")
    out += ["", f"Each round chooses on {sel['on']}; the shipped model in bold."]
    r2 = sel.get("round2")
    if r2 and "replaces" in r2:
        b = r2["best"]
        out[-1] += (f" Round 2's rule, set before it ran: {r2['rule']}. Its best, k {b['k']} × "
                    f"{b['windows']} windows (seed {b['seed']}), got {r2['best_val_correct']} "
                    f"validation captures right against round 1's {r2['round1_val_correct']}: "
                    + ("it replaces round 1's model." if r2["replaces"]
                       else "round 1's model stays."))
    return "\n".join(out)


def _test_reads(res: dict) -> str:
    reads = res["test_reads"]
    if isinstance(reads, str):
        return reads
    return "; ".join(f"round {r['round']}, " + r["read"] + (
        f" (k {r['model']['k']} × {r['model']['windows']})" if r["model"] else "") for r in reads)


def devices_pairs(res: dict) -> str:
    ind = res["main"]["indistinguishable"]
    out = ["| types | a called b | b called a | captures of both |", "|---|---:|---:|---:|"]
    for p in ind["pairs"]:
        out.append(f"| {p['types'][0]} / {p['types'][1]} | {p['captures_a_as_b']} | "
                   f"{p['captures_b_as_a']} | {p['captures']} |")
    out += ["", f"Pairs where at least {100 * ind['threshold']:.0f} % of one type's held-out "
            f"captures were called the other. Counting each such group as one answer, accuracy "
            f"per capture is {_f(ind['accuracy_pairs_merged'])}."]
    return "\n".join(out)


def inference_table(res: dict) -> str:
    out = ["| bundle | model | .tflite | bytes | median ms | p99 ms | batch-64 ms/sample | "
           "+ OOD score and decision, median ms |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        ood = f"{r['classify_median_ms']:.3f}" if "classify_median_ms" in r else "–"
        out.append(f"| {r['bundle']} | {r['model']} ({r['representation']}) | "
                   f"{'int8' if r['int8'] else 'float'} | {r['bytes']:,} | {r['median_ms']:.3f} | "
                   f"{r['p99_ms']:.3f} | {r['batch64_ms_per_sample']:.3f} | {ood} |")
    m = res["machine"]
    out += ["", f"`{res['command']}` ({res['date']}, {res['runs']} runs per figure; "
            f"{m['cores']} cores, load average {m['loadavg_1m_before']} before and "
            f"{m['loadavg_1m_after']} after)."]
    return "\n".join(out)


def demo_printout(res: dict) -> str:
    """What `./egw.sh demo` printed for the committed run (topologies.cli.print_summary on
    its results), as an indented block; the data folder's absolute path shortened."""
    import contextlib
    import io

    sys.path.insert(0, str(REPO))
    from topologies.cli import print_summary

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_summary(res)
    text = re.sub(r"/\S*/(iscx-apps|iot-sentinel)\b", r".../\1", buf.getvalue())
    lines = text.splitlines() + ["report: reports/smart_home/report.md"]
    return "\n" + "\n".join("    " + ln for ln in lines) + "\n"


RENDERERS = {"demo-printout": ("smart_home", demo_printout),
             "inference": ("inference", inference_table),
             "default-audit": ("default_audit", audit_table),
             "flood-fairness": ("fairness", fairness_table),
             "fleet-sizing": ("fleet", fleet_sizing_table),
             "scale-build": ("scale", scale_build_table),
             "scale-nas": ("scale", scale_nas_table),
             "scale-extrapolation": ("scale", scale_extrapolation_table),
             "scale-bundle": ("scale", scale_bundle_table),
             "fleet": ("fleet", fleet_table),
             "open-set": ("open_set", open_set_table),
             "devices": ("devices", devices_table),
             "devices-selection": ("devices", devices_selection),
             "devices-pairs": ("devices", devices_pairs),
             "smart-home-confusion": ("smart_home", smart_home_confusion),
             "smart-home-priority": ("smart_home", smart_home_priority),
             "smart-home-flows": ("smart_home", smart_home_flows),
             "smart-home-idle": ("smart_home", smart_home_idle),
             "smart-home-decision": ("smart_home", smart_home_decision),
             "smart-home-devices": ("smart_home", smart_home_devices),"tinykp-selection": ("tinykp_selection", selection_table),"families": ("families", families_table),
             "label-efficiency": ("label_efficiency", label_table),
             "min-confidence": ("min_confidence", min_confidence_table)}


def render_block(name: str) -> str | None:
    src, fn = RENDERERS[name]
    res = _load(src)
    return None if res is None else fn(res) + "\n"


def check_file(path: Path = DOC) -> list[str]:
    """Names of result blocks in ``path`` whose text differs from their JSON's rendering."""
    return docblocks.stale(path, BLOCK, render_block)


def render_file(path: Path = DOC) -> list[str]:
    return docblocks.fill(path, BLOCK, render_block)


def write_plots() -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    made = []
    fam = _load("families")
    if fam:
        keras_rows = [r for r in fam["rows"] if r["curve"].get("val_loss")]
        nas = [r for r in fam["rows"] if r["curve"].get("val_macro_f1")]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for r in keras_rows:
            axes[0].plot(range(1, len(r["curve"]["val_loss"]) + 1), r["curve"]["val_loss"], label=r["name"])
        axes[0].set(xlabel="epoch", ylabel="validation loss", title="Learning curves (validation loss)")
        axes[0].set_yscale("log")
        axes[0].legend(fontsize=8)
        for r in nas:
            v = r["curve"]["val_macro_f1"]
            axes[1].plot(range(len(v)), v, "o-", ms=3, label=f"{r['name']}: each candidate")
        axes[1].set(xlabel="candidate (generation order)", ylabel="holdout macro-F1",
                    title="HW-NAS search")
        if nas:
            axes[1].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(IMG / "learning_curves.png", dpi=90)
        plt.close(fig)
        made.append("learning_curves.png")
    le = _load("label_efficiency")
    if le:
        fig, ax = plt.subplots(figsize=(6, 4))
        total = max(p["labelled_rows"] for p in le["points"])
        for m in ("bytesgan", "cnn", "tiny", "forest"):
            pts = sorted((p for p in le["points"] if p["model"] == m),
                         key=lambda p: p["labels_per_class"] or 10 ** 9)
            if pts:
                xs = [p["labels_per_class"] or total // 6 for p in pts]
                ax.plot(xs, [p["test_macro_f1_int8"] for p in pts], "o-", label=m)
        ax.set_xscale("log")
        ax.set(xlabel="labelled packets per class (rightmost: all)", ylabel="test macro-F1 (int8)",
               title="Label efficiency (packet1480, same split)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(IMG / "label_efficiency.png", dpi=90)
        plt.close(fig)
        made.append("label_efficiency.png")
    return made


if __name__ == "__main__":
    write_plots()
    for doc in DOCS:
        render_file(doc)
        bad = check_file(doc)
        print(f"rendered {doc.relative_to(REPO)}" + (f"; blocks without JSON: {bad}" if bad else ""))
    sys.exit(0)
