"""One seeded, bounded hypothesis run shared by the fuzz harnesses
(fuzz/fuzz_packets.py, fuzz/fuzz_policy.py) and their CI test
(tests/unit/test_fuzz_ci.py)."""
from __future__ import annotations

import os
import random
import time
from typing import Any, Callable


def fuzz_seed(seed: int | None = None) -> int:
    """``seed``, else ``$EGW_FUZZ_SEED`` (CI sets it per run), else a random one."""
    if seed is not None:
        return seed
    env = os.environ.get("EGW_FUZZ_SEED", "").strip()
    return int(env) if env else random.randrange(2**32)


class Finding(AssertionError):
    """The target raised; the message names the seed that repeats the run."""


def run_seeded(strategy: Any, target: Callable[[Any], None], iterations: int, seed: int,
               seconds: float | None = None, show: Callable[[Any], str] = repr,
               batch: int = 50) -> int:
    """Feed ``target`` up to ``iterations`` examples of ``strategy``, in hypothesis
    runs of ``batch`` examples seeded ``seed``, ``seed + 1``, ...; no new batch starts
    after ``seconds``.  Returns how many examples ran.  A finding prints the example
    (``show``) and raises :class:`Finding` naming its batch's seed (which repeats it
    as the first batch of a run)."""
    stop = time.monotonic() + seconds if seconds else None
    ran = 0
    while ran < iterations and (stop is None or time.monotonic() < stop):
        n = min(batch, iterations - ran)
        _run_batch(strategy, target, n, (seed + ran // batch) % 2**32, show)
        ran += n
    return ran


def _run_batch(strategy: Any, target: Callable[[Any], None], n: int, seed: int,
               show: Callable[[Any], str]) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    last: dict[str, Any] = {}

    @settings(max_examples=n, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(example=strategy)
    def prop(example):
        last["example"] = example
        target(example)

    try:
        hypothesis_seed(seed)(prop)()
    except Exception as exc:
        print("FINDING:", show(last.get("example")))
        raise Finding(f"fuzz finding with seed {seed} (repeat: EGW_FUZZ_SEED={seed} or "
                      f"--seed {seed}): {type(exc).__name__}: {exc}") from exc
