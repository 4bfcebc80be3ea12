"""The NAS checkpoint (no Ray needed): a search started again resumes after its last
generation with the same history, more generations extend it, and a checkpoint of another
search is ignored. The --ray options refuse what they cannot do in one line."""
from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from classifier.nn import tiny_nas  # noqa: E402
from tests.unit.test_models import K, _data  # noqa: E402


def _search(ckpt, generations, log, epochs=1):
    X, y = _data((64,), 40)
    return tiny_nas.search(X, y, (64,), K, generations=generations, population=1,
                           epochs=epochs, batch_size=16, limits={"max_params": 20_000},
                           groups=np.arange(40), log=log, checkpoint=ckpt)


def _key(history):
    return [(r["generation"], r["mutation"], r["val_macro_f1"]) for r in history]


def test_a_search_resumes_from_its_checkpoint_and_extends(tmp_path):
    ckpt = tmp_path / "nas_checkpoint.npz"
    lines = []
    first = _search(ckpt, 1, lines.append)
    assert ckpt.exists() and len(first.history) == 2
    assert not any("resuming" in line for line in lines)

    lines.clear()
    again = _search(ckpt, 1, lines.append)          # nothing left to do: the same result
    assert lines[0].startswith(f"nas: resuming from {ckpt}: generation 1 done, 2 candidates")
    assert _key(again.history) == _key(first.history)
    assert again.genome == first.genome
    assert all(np.array_equal(a, b) for a, b in zip(again.model.get_weights(),
                                                    first.model.get_weights()))

    lines.clear()
    more = _search(ckpt, 2, lines.append)           # one more generation, after the first
    assert _key(more.history)[:2] == _key(first.history) and len(more.history) == 3
    assert sum("generation 2 child" in line for line in lines) == 1

    lines.clear()
    other = _search(ckpt, 1, lines.append, epochs=2)  # another search: starts afresh
    assert "holds another search" in lines[0] and "generation 0 parent" in lines[1]
    assert len(other.history) == 2


def test_ray_options_refuse_what_they_cannot_do(tmp_path, capsys, monkeypatch):
    from classifier.cluster import ClusterError, RayPool
    from egw_cli.main import main as egw

    rc = egw(["train", "--model", "tinykp", "--data", str(tmp_path / "none.npz"),
              "--out", str(tmp_path / "m"), "--ray"])
    assert rc != 0 and "--ray: only the architecture search" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)    # as if the cluster extra were absent
    with pytest.raises(ClusterError, match=r"pip install 'sdn-egw\[cluster\]'"):
        RayPool()
