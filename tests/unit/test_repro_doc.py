"""Every table and quoted figure of docs/reproduction.md is rendered from its committed JSON in
docs/results/repro/ (benchmarks/repro_report.py): a block that disagrees with its JSON (typed
by hand, or a stale JSON) fails here."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import repro_report  # noqa: E402


def _blocks(doc: Path = repro_report.DOC) -> list[str]:
    return [m["name"] for m in repro_report.BLOCK.finditer(doc.read_text())]


def test_reproduction_doc_blocks_match_their_json():
    assert set(repro_report.RENDERERS) | {"summary", "tinycnn-compare", "deepnfv-compare"} <= set(_blocks())
    assert {p.stem for p in repro_report.RESULTS.glob("*.json")} == set(repro_report.RUNS)
    assert repro_report.check_file() == []


def test_a_changed_figure_is_caught(tmp_path):
    """The check is real: edit one figure in a copy of the JSON and its table no longer matches."""
    fake = tmp_path / "repro"
    shutil.copytree(repro_report.RESULTS, fake)
    r = json.loads((fake / "tinycnn.json").read_text())
    r["runs"]["honest"]["test"]["macro_f1"] += 0.01
    (fake / "tinycnn.json").write_text(json.dumps(r))
    assert repro_report.check_file(results=fake) == ["summary", "tinycnn", "tinycnn-compare"]
    r = json.loads((fake / "deepnfv.json").read_text())
    r["runs"]["honest"]["cart"]["per_row"]["accuracy"] -= 0.01
    (fake / "deepnfv.json").write_text(json.dumps(r))
    assert set(repro_report.check_file(results=fake)) == {"summary", "tinycnn", "tinycnn-compare", "deepnfv",
                                                           "deepnfv-findings", "deepnfv-compare"}


def test_a_missing_json_is_caught(tmp_path):
    fake = tmp_path / "repro"
    shutil.copytree(repro_report.RESULTS, fake)
    (fake / "bytesgan.json").unlink()
    assert set(repro_report.check_file(results=fake)) == {"summary", "bytesgan", "bytesgan-findings"}


def test_committed_results_are_compact_and_their_plots_are_in_the_doc():
    text = repro_report.DOC.read_text()
    for name in repro_report.RUNS:
        f = repro_report.RESULTS / f"{name}.json"
        r = json.loads(f.read_text())
        assert f.stat().st_size < 200_000 and "confusion" not in f.read_text()
        for p in r["plots"]:
            assert (repro_report.IMG / p).is_file() and f"img/repro/{p}" in text


def test_collect_compacts_a_run(tmp_path):
    run = tmp_path / "runs" / "deepnfv"
    run.mkdir(parents=True)
    (run / "deepnfv_per_class.png").write_bytes(b"png")
    (run / "results.json").write_text(json.dumps(
        {"plots": ["deepnfv_per_class.png"], "runs": {"honest": {"cart": {"per_row": {
            "accuracy": 0.5, "confusion": [[1, 0], [0, 1]]}}}}, "losses": {"d": [1.0]}}))
    assert repro_report.collect(tmp_path / "runs", tmp_path / "res", tmp_path / "img") == ["deepnfv"]
    out = json.loads((tmp_path / "res" / "deepnfv.json").read_text())
    assert out == {"plots": ["deepnfv_per_class.png"], "runs": {"honest": {"cart": {"per_row": {"accuracy": 0.5}}}},
                   "losses": {"d": [1.0]}}
    assert (tmp_path / "img" / "deepnfv_per_class.png").read_bytes() == b"png"
    # a run of the same script at another size keeps its plots apart
    (tmp_path / "runs" / "deepnfv").rename(tmp_path / "runs" / "deepnfv-larger")
    assert repro_report.collect(tmp_path / "runs", tmp_path / "res", tmp_path / "img") == ["deepnfv-larger"]
    out = json.loads((tmp_path / "res" / "deepnfv-larger.json").read_text())
    assert out["plots"] == ["larger_deepnfv_per_class.png"]
    assert (tmp_path / "img" / "larger_deepnfv_per_class.png").is_file()
