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
