"""The fuzzers in CI: a bounded, randomized run of the packet and policy fuzzers
(fuzz/), unlike the derandomized property tests.  The seed comes from
``$EGW_FUZZ_SEED`` (.ci/run sets one per CI run) or is random; a finding fails the
test with the seed in its message, the example is printed.  Together under 60 s."""
from __future__ import annotations

import os
import time

import pytest

from fuzz.runner import Finding, fuzz_seed, run_seeded

SECONDS = float(os.environ.get("EGW_FUZZ_SECONDS", "20"))   # per fuzzer
pytestmark = pytest.mark.timeout(SECONDS + 60)    # a hang is a finding too


def test_packet_fuzzer_bounded_random_run(capsys):
    from fuzz.fuzz_packets import run_hypothesis

    t0 = time.monotonic()
    assert run_hypothesis(100_000, None, seconds=SECONDS) == 0
    assert time.monotonic() - t0 < SECONDS + 15
    assert "no finding" in capsys.readouterr().out


def test_policy_fuzzer_bounded_random_run():
    from fuzz.policy_gen import policy_texts
    from tests.unit.test_fuzz_policy import check

    def timed_check(text: str) -> None:
        t0 = time.monotonic()
        check(text)
        took = time.monotonic() - t0
        assert took < 10, f"{len(text)} bytes took {took:.1f} s"

    seed = fuzz_seed()
    print(f"seed {seed}")
    t0 = time.monotonic()
    n = run_seeded(policy_texts(), timed_check, 100_000, seed, SECONDS,
                   show=lambda t: (t or "")[:2000])
    assert n > 50, f"seed {seed}: only {n} policies in {SECONDS} s"
    assert time.monotonic() - t0 < SECONDS + 15


def test_a_finding_names_the_seed(capsys):
    from hypothesis import strategies as st

    def target(x: int) -> None:
        assert x < 5

    with pytest.raises(Finding, match=r"seed 1234 \(repeat: EGW_FUZZ_SEED=1234"):
        run_seeded(st.integers(0, 10), target, 200, 1234)
    assert "FINDING:" in capsys.readouterr().out


def test_seed_from_environment(monkeypatch):
    monkeypatch.setenv("EGW_FUZZ_SEED", "42")
    assert fuzz_seed() == 42 and fuzz_seed(7) == 7
    monkeypatch.delenv("EGW_FUZZ_SEED")
    assert all(0 <= fuzz_seed() < 2**32 for _ in range(3))      # random
