"""Fuzz the policy loader: any text either loads into a usable policy or raises a
``PolicyError`` naming the file -- never another exception.

    .venv/bin/python fuzz/fuzz_policy.py --iterations 5000             # hypothesis, random
    .venv/bin/python fuzz/fuzz_policy.py --atheris -runs=200000         # coverage-guided

Without ``--atheris``: mutations of the shipped policies (fuzz/policy_gen.py), random
seed (``--seed`` to repeat). ``--atheris`` (``pip install atheris``) feeds libFuzzer's
bytes, decoded as UTF-8 with replacement, seeded from the shipped policies.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--seed", type=int)
    p.add_argument("--atheris", action="store_true")
    a, rest = p.parse_known_args(argv)
    from tests.unit.test_fuzz_policy import check

    if a.atheris:
        import atheris

        atheris.instrument_all()
        atheris.Setup([sys.argv[0], *rest],
                      lambda data: check(bytes(data).decode("utf-8", "replace")))
        atheris.Fuzz()
        return 0
    return run_hypothesis(a.iterations, a.seed)


def run_hypothesis(iterations: int, seed: int | None, seconds: float | None = None) -> int:
    from fuzz.policy_gen import policy_texts
    from fuzz.runner import fuzz_seed, run_seeded
    from tests.unit.test_fuzz_policy import check

    seed = fuzz_seed(seed)
    print(f"seed {seed}, {iterations} policies")
    n = run_seeded(policy_texts(), check, iterations, seed, seconds,
                   show=lambda t: "policy text:\n" + (t or "")[:4000])
    print(f"ok: {n} policies, no finding")
    return 0


if __name__ == "__main__":
    sys.exit(main())
