"""Every result table in docs/models.md is rendered from its committed JSON in docs/results/:
a table that disagrees with its JSON (typed by hand, or a stale JSON) fails here."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import models_doc  # noqa: E402


def test_models_doc_tables_match_their_json():
    blocks = [m["name"] for m in models_doc.BLOCK.finditer(models_doc.DOC.read_text())]
    assert {"families", "label-efficiency", "min-confidence"} <= set(blocks)
    assert models_doc.check_file() == []


def test_smart_home_doc_tables_match_their_json():
    doc = models_doc.REPO / "docs" / "smart_home.md"
    blocks = {m["name"] for m in models_doc.BLOCK.finditer(doc.read_text())}
    assert {"smart-home-confusion", "smart-home-priority", "smart-home-flows",
            "smart-home-idle", "smart-home-decision", "smart-home-devices"} <= blocks
    assert models_doc.check_file(doc) == []


def test_readme_demo_printout_is_the_committed_run():
    """The README's demo printout is print_summary of docs/results/smart_home.json."""
    readme = models_doc.REPO / "README.md"
    assert "demo-printout" in {m["name"] for m in models_doc.BLOCK.finditer(readme.read_text())}
    assert models_doc.check_file(readme) == []
    res = json.loads((models_doc.REPO / "docs" / "results" / "smart_home.json").read_text())
    text = models_doc.demo_printout(res)
    ratio = res["latency_p95_ratio_baseline_over_policy"]
    assert f"p95 latency ratio (no policy / policy): {ratio}x" in text
    res["latency_p95_ratio_baseline_over_policy"] = ratio + 1
    assert f"{ratio + 1}x" in models_doc.demo_printout(res)


def test_benchmarks_doc_inference_table_matches_its_json():
    doc = models_doc.REPO / "docs" / "benchmarks.md"
    assert "inference" in {m["name"] for m in models_doc.BLOCK.finditer(doc.read_text())}
    assert models_doc.check_file(doc) == []


def test_operations_doc_tables_match_their_json():
    doc = models_doc.REPO / "docs" / "operations.md"
    assert "flood-fairness" in {m["name"] for m in models_doc.BLOCK.finditer(doc.read_text())}
    assert models_doc.check_file(doc) == []


def test_a_changed_figure_is_caught(tmp_path, monkeypatch):
    """The check is real: edit one figure in a copy of the JSON and the doc no longer matches."""
    res = json.loads((models_doc.RESULTS / "families.json").read_text())
    res["rows"][0]["test_macro_f1_int8"] += 0.01
    fake = tmp_path / "results"
    fake.mkdir()
    for p in models_doc.RESULTS.glob("*.json"):
        (fake / p.name).write_text(p.read_text())
    (fake / "families.json").write_text(json.dumps(res))
    monkeypatch.setattr(models_doc, "RESULTS", fake)
    assert models_doc.check_file() == ["families"]


def test_default_bundle_is_the_published_tiny_neural_model():
    """The shipped default is a neural family within the limits, its card's test figure is the
    families table's row for it, it is the best neural row, and it beats the forest that
    shipped before it (docs/models.md says where it stands against the boosted trees)."""
    card = json.loads((REPO / "classifier" / "models" / "default" / "card.json").read_text())
    rows = {r["name"]: r for r in json.loads((models_doc.RESULTS / "families.json").read_text())["rows"]}
    assert card["model"] in ("tinykp", "tiny", "bytesgan", "nas")
    assert card["sizes"]["params"] <= 50_000 and card["sizes"]["flops"] <= 5_000_000
    row = rows[card["model"]]
    assert row["test_macro_f1_int8"] == pytest.approx(card["metrics"]["int8"]["test"]["macro_f1"], abs=1e-4)
    neural = [r for r in rows.values() if r["model"] not in ("forest", "boosted", "cart", "knn")]
    assert row["test_macro_f1_int8"] == max(r["test_macro_f1_int8"] for r in neural)
    assert row["test_macro_f1_int8"] > rows["forest"]["test_macro_f1_int8"]
    pre = json.loads((REPO / "classifier" / "models" / "default" / "preprocess.json").read_text())
    assert pre["mask"]["zero_tcp_option_counters"] is True   # honest split: counters masked


def test_scale_doc_tables_match_their_json():
    doc = models_doc.REPO / "docs" / "scale.md"
    blocks = {m["name"] for m in models_doc.BLOCK.finditer(doc.read_text())}
    assert {"scale-build", "scale-nas", "scale-extrapolation", "scale-bundle", "fleet",
            "fleet-sizing"} <= blocks
    assert models_doc.check_file(doc) == []
