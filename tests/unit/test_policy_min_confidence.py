"""The shipped policies' ``min_confidence`` values are the ones derived from validation
sessions for the default model (benchmarks/min_confidence.py -> docs/results/min_confidence.json),
and the derivation rule does what it says."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from policies import load_policy
from policies.generate import MIN_CONFIDENCE

REPO = Path(__file__).resolve().parents[2]
RESULTS = json.loads((REPO / "docs" / "results" / "min_confidence.json").read_text())


@pytest.mark.parametrize("name", ["smart_home.yaml", "strict.yaml"])
def test_shipped_policies_use_the_derived_values(name):
    pol = load_policy(REPO / "policies" / name)
    assert MIN_CONFIDENCE, "generate.py ships no min_confidence values"
    for cls, value in MIN_CONFIDENCE.items():
        assert value == RESULTS["classes"][cls]["min_confidence"], cls
        assert pol.classes[cls].min_confidence == value, (name, cls)


def test_the_results_were_derived_for_the_shipped_default():
    card = json.loads((REPO / "classifier" / "models" / "default" / "card.json").read_text())
    assert RESULTS["model_family"] == card["model"] and RESULTS["split"] == "val"


def test_derivation_rule():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from min_confidence import derive

    # class 0 predictions: right when confident (>= 0.6), wrong below
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.65, 0.35], [0.55, 0.45], [0.52, 0.48], [0.2, 0.8]])
    y = np.array([0, 0, 0, 1, 1, 1])
    r = derive(probs, y, ["a", "b"], 0.9)
    assert r["a"]["min_confidence"] == 0.6 and r["a"]["precision"] == 1.0 and r["a"]["kept"] == 3
    assert r["b"]["min_confidence"] == 0.0   # every b prediction is right
