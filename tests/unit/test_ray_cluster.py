"""``--ray``: the dataset build and the architecture search on a two-node Ray cluster
started on this machine, against the local worker processes.

Skipped when Ray (the ``cluster`` extra) is not installed, unless EGW_REQUIRE_INTEGRATION=1.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_data_dataset import _make_tree

if os.environ.get("EGW_REQUIRE_INTEGRATION") == "1":
    import ray  # noqa: F401  (CI installs the cluster extra: a missing Ray is a failure)
else:
    pytest.importorskip("ray", reason="Ray is not installed (the cluster extra)")

ROOT = Path(__file__).resolve().parents[2]
MB = 2 ** 20


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each on this machine; the test process is not connected."""
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 100 * MB}
    c = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        c.add_node(**node)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()


def _egw(*args, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "egw_cli.main", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kw)


def _run(*args, timeout: float = 240) -> str:
    p = _egw(*args)
    try:
        out, _ = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:            # timed out: stop the driver this test started
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 0, out
    return out


def test_dataset_build_on_ray_is_identical_to_the_local_build(cluster, tmp_path):
    tree = _make_tree(tmp_path / "in", n_files=3)
    common = ["dataset", "build", "--input", str(tree), "--repr", "kpackets", "--split",
              "0.6,0.2,0.2", "--min-files", "1000000"]
    _run(*common, "--jobs", "2", "--no-progress", "--out", str(tmp_path / "local.npz"))
    out = _run(*common, "--ray", cluster.address, "--out", str(tmp_path / "ray.npz"))
    assert "dataset build (ray)" in out and "9/9" in out      # the driver's progress
    local, remote = np.load(tmp_path / "local.npz"), np.load(tmp_path / "ray.npz")
    assert set(local.files) == set(remote.files)
    for k in local.files:
        if k != "manifest":                  # it records when, how long and how it ran
            assert np.array_equal(local[k], remote[k]), k
    assert len(local["X"]) == 54
    manifest = json.loads(str(remote["manifest"]))
    assert manifest["options"]["ray"] == cluster.address


def _worker_pids(cluster) -> dict[int, str]:
    """The Ray worker processes of the cluster's nodes (children of each node's raylet,
    whose PID Ray gives) and their process titles (``ray::<task>`` while one runs)."""
    raylets = {n.all_processes["raylet"][0].process.pid
               for n in [cluster.head_node, *cluster.worker_nodes]}
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid in raylets:
                out[int(d.name)] = (d / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, IndexError, ValueError):
            continue
    return out


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _checkpoint_generation(path: Path) -> int:
    try:
        with np.load(path) as z:
            return int(json.loads(str(z["state"]))["generation"])
    except (OSError, ValueError, KeyError):
        return -1


def _history(out_dir: Path) -> list[dict]:
    keep = ("generation", "child", "mutation", "genome", "val_macro_f1", "val_accuracy",
            "epochs", "params", "flops")
    return [{k: r[k] for k in keep} for r in json.loads((out_dir / "nas_history.json").read_text())]


def test_nas_on_ray_survives_a_lost_worker_and_a_driver_restart(cluster, tmp_path):
    """Children as Ray tasks give the same search as local worker processes, even when a
    worker running a child is killed (Ray re-runs the task) and the driver is killed
    after a generation (a new driver resumes from the checkpoint)."""
    tree = _make_tree(tmp_path / "in", n_files=2)
    data = tmp_path / "s.npz"
    _run("dataset", "build", "--input", str(tree), "--repr", "session784", "--no-progress",
         "--out", str(data))
    search = ["train", "--model", "nas", "--data", str(data), "--generations", "2",
              "--population", "2", "--epochs", "2", "--no-progress"]
    _run(*search, "--workers", "2", "--out", str(tmp_path / "local"))

    out_dir = tmp_path / "ray"
    ckpt = out_dir / "nas_checkpoint.npz"
    driver = _egw(*search, "--ray", cluster.address, "--out", str(out_dir))
    try:
        # a worker dies while it trains the first parent (generation 0): Ray re-runs it
        busy = _wait(lambda: [p for p, t in _worker_pids(cluster).items()
                              if t == "ray::_fitness_ray_task"], 120, "a child running on Ray")
        os.kill(busy[0], signal.SIGKILL)
        # the driver dies once generation 1 is checkpointed
        _wait(lambda: _checkpoint_generation(ckpt) >= 1, 180, "generation 1 checkpointed")
        os.killpg(driver.pid, signal.SIGKILL)
        first, _ = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    assert busy[0] not in _worker_pids(cluster)
    assert "generation 0 parent" in first and "wrote" not in first
    gen = _checkpoint_generation(ckpt)
    second = _run(*search, "--ray", cluster.address, "--out", str(out_dir))
    assert f"resuming from {ckpt}: generation {gen} done" in second
    assert "generation 0 parent" not in second and "wrote" in second
    assert _history(out_dir) == _history(tmp_path / "local")
    assert len(_history(out_dir)) == 5


def test_the_gateway_and_the_cli_do_not_import_ray():
    """Ray is imported inside the --ray paths only (the gateway never needs it)."""
    code = ("import sys, egw_cli.main, ryu_apps.gateway.core, classifier.build, "
            "classifier.cluster, classifier.cli_models; "
            "egw_cli.main.build_parser(); "
            "assert 'ray' not in sys.modules, 'ray imported'")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
