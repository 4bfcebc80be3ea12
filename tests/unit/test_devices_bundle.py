"""The shipped device model (classifier/models/devices) is the one docs/results/devices.json
publishes, and `egw evaluate` scores device captures one answer per capture."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from egw_cli.main import main as egw
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "classifier" / "models" / "devices"


def test_shipped_device_bundle_is_the_published_main_model():
    card = json.loads((BUNDLE / "card.json").read_text())
    res = json.loads((REPO / "docs" / "results" / "devices.json").read_text())
    main = res["rows"][0]
    assert card["model"] == main["model"] == "tinykp"            # a neural family as main
    assert card["metrics"]["int8"]["test"]["accuracy"] == pytest.approx(main["test_accuracy"])
    assert res["main"]["per_capture"]["accuracy"] == pytest.approx(main["test_accuracy"])
    dev = card["data"]["manifest"]["options"]["device"]
    assert (dev["windows"], json.loads((BUNDLE / "preprocess.json").read_text())["k"]) == \
        (main["windows"], main["k"]) == (res["selection"]["chosen"]["windows"],
                                         res["selection"]["chosen"]["k"])
    assert card["seed"] == main.get("seed", 0) == res["selection"]["chosen"].get("seed", 0)
    # the shipped model's test read is recorded, under the round that chose it
    reads = res["test_reads"]
    assert isinstance(reads, str) or any(
        r["model"] and (r["model"]["k"], r["model"]["windows"], r["model"]["seed"]) ==
        (main["k"], main["windows"], card["seed"]) for r in reads)
    assert len(card["labels"]) == res["types"] == 27
    assert (BUNDLE / "model.int8.tflite").stat().st_size < 200_000
    assert {r["model"] for r in res["rows"][1:]} == {"forest", "boosted"}


@pytest.mark.skipif(not (SHARED_DATA / "iot-sentinel").is_dir(), reason="needs iot-sentinel")
def test_evaluate_answers_per_capture(tmp_path, capsys):
    held = json.loads((BUNDLE / "heldout_captures.json").read_text())[:6]
    root = SHARED_DATA / "iot-sentinel"
    for e in held:
        d = tmp_path / "caps" / e["directory"]
        d.mkdir(parents=True, exist_ok=True)
        if not (d / "_iotdevice-mac.txt").exists():
            os.symlink(root / e["directory"] / "_iotdevice-mac.txt", d / "_iotdevice-mac.txt")
        os.symlink(root / e["path"], d / Path(e["path"]).name)
    out = tmp_path / "eval.json"
    assert egw(["evaluate", "--model", str(BUNDLE), "--data", str(tmp_path / "caps"),
                "--json", str(out), "--confusion", str(tmp_path / "cm.png"), "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert res["per_capture"]["n"] == len(held)
    assert set(res["per_capture"]) == {"accuracy", "macro_f1", "n"}
    assert res["per_window"]["n"] >= len(held)
    assert [c["capture"] for c in res["captures"]] == sorted(e["path"] for e in held)
    assert (tmp_path / "cm.png").stat().st_size > 1000
    assert "per capture: accuracy" in capsys.readouterr().out


def test_round2_decision_follows_its_declared_rule():
    """devices.json's round-2 outcome is what benchmarks/devices.py's rule gives on the
    published validation figures, and the shipped choice follows it."""
    import sys
    sys.path.insert(0, str(REPO / "benchmarks"))
    import devices as bench

    res = json.loads((REPO / "docs" / "results" / "devices.json").read_text())
    sel = res["selection"]

    def cand(r):
        val = {"accuracy": r["val_accuracy"], "macro_f1": r["val_macro_f1"], "n": r["val_captures"]}
        return {"round": r["round"], "k": r["k"], "windows": r["windows"], "seed": r["seed"],
                "card": {"metrics": {"int8": {"val": val}}}}

    cands = [cand(r) for r in sel["candidates"]]
    assert [(c["k"], c["windows"], c["seed"]) for c in cands if c["round"] == 2] == \
        [tuple(c) for c in bench.ROUND2]
    round1 = max((c for c in cands if c["round"] == 1), key=bench.val_key)
    best, switch = bench.round2_switches(round1, [c for c in cands if c["round"] == 2])
    assert sel["round1"] == bench.ident(round1) and sel["round2"]["best"] == bench.ident(best)
    assert sel["round2"]["replaces"] == switch
    assert sel["round2"]["rule"] == bench.ROUND2_RULE
    assert sel["chosen"] == bench.ident(best if switch else round1)
    # a round-2 candidate two captures above round 1 would have replaced it
    better = {**best, "card": {"metrics": {"int8": {"val": {
        "accuracy": (bench.val_correct(round1) + 2) / 81, "macro_f1": 0.0, "n": 81}}}}}
    assert bench.round2_switches(round1, [better]) == (better, True)
    assert not bench.round2_switches(round1, [{**better, "card": {"metrics": {"int8": {"val": {
        "accuracy": (bench.val_correct(round1) + 1) / 81, "macro_f1": 1.0, "n": 81}}}}}])[1]
