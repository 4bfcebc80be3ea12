"""The default bundle's recipe (its card's build argv and train command), pointed at other
captures, builds and trains the same family there."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("tensorflow")

from classifier.bundle import DEFAULT_BUNDLE_DIR, load_bundle  # noqa: E402
from classifier.recipe import RecipeError, recipe, retarget  # noqa: E402
from egw_cli.main import main as egw  # noqa: E402
from tests.unit.test_data_dataset import _make_tree  # noqa: E402


def _default_card():
    return json.loads((DEFAULT_BUNDLE_DIR / "card.json").read_text())


def test_recipe_of_the_default_bundle():
    card = _default_card()
    cmds = recipe(card)
    assert cmds[0][:2] == ["dataset", "build"] and cmds[-1][:1] == ["train"]
    assert cmds[-1][cmds[-1].index("--model") + 1] == card["model"]
    re = retarget(cmds, "mycaps", "w")
    build = re[0]
    assert build[build.index("--input") + 1] == "mycaps" and "--taxonomy" not in build
    assert build[build.index("--out") + 1] == "w/data.npz"
    assert re[-1][re[-1].index("--data") + 1] == "w/data.npz"
    assert re[-1][re[-1].index("--out") + 1] == "w/model"
    assert "--note" not in re[-1]
    with pytest.raises(RecipeError, match="no `egw train` command"):
        recipe({"data": {"manifest": {"argv": ["dataset", "build"]}}})


def test_default_recipe_runs_on_other_captures(tmp_path, capsys):
    """`egw recipe --run` on small synthetic captures trains the default's family with the
    default's preprocessing, and the bundle scores them."""
    caps = _make_tree(tmp_path / "caps", n_files=2, sessions=12)
    work = tmp_path / "work"
    assert egw(["recipe", "--input", str(caps), "--workdir", str(work), "--run"]) == 0
    out = capsys.readouterr().out
    assert "egw dataset build" in out and "egw train" in out
    card = json.loads((work / "model" / "card.json").read_text())
    default = _default_card()
    assert card["model"] == default["model"]
    assert card["labels"] == ["chat", "voice", "web"]
    assert load_bundle(work / "model").preprocess.to_dict() == load_bundle().preprocess.to_dict()
    assert card["metrics"]["int8"]["test"]["n"] > 0


def test_recipe_errors_are_one_line(tmp_path, capsys):
    assert egw(["recipe", str(tmp_path)]) == 2
    assert "card.json: cannot read" in capsys.readouterr().err
    assert egw(["recipe", "--run"]) == 2
    assert "--run needs --input" in capsys.readouterr().err
