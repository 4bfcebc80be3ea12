"""Fuzz the packet path: ``ip_from_frame`` -> ``parse`` -> every ``Preprocess``
representation -> the gateway engine (real rule builder, in-memory switch).

    .venv/bin/python fuzz/fuzz_packets.py --iterations 20000          # hypothesis, random
    .venv/bin/python fuzz/fuzz_packets.py --atheris -runs=1000000       # coverage-guided
    .venv/bin/python fuzz/fuzz_packets.py --atheris -max_total_time=600 corpus_dir/

Without ``--atheris`` it draws frames from the structured generator in fuzz/frames.py
(VLAN, IPv4 options/fragments, IPv6 extension headers, mutations) with a random seed
(``--seed`` to repeat). With ``--atheris`` (``pip install atheris``; not a project
dependency) libFuzzer mutates raw bytes, seeded with the scapy corpus. Any exception,
or an engine that had to swallow one (``counters['failed']``), is a finding: the frame
is printed in hex and the process exits non-zero.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classifier.packets import SUPPORTED_LINKTYPES, ip_from_frame, parse  # noqa: E402
from classifier.preprocess import Preprocess  # noqa: E402

PPS = [Preprocess(repr="packet1480"), Preprocess(repr="session784"),
       Preprocess(repr="image900"), Preprocess(repr="kpackets", k=4, n_bytes=40),
       Preprocess(repr="packet1480", layers="l7", n_bytes=64)]


class Target:
    def __init__(self):
        from tests.unit.test_robust_packets import Harness, PayloadClassifier

        self._mk = lambda: Harness(Preprocess(repr="packet1480", layers="l7", n_bytes=64),
                                   PayloadClassifier(), max_sessions=32)
        self.h = self._mk()
        self.n = 0

    def __call__(self, frame: bytes) -> None:
        for lt in SUPPORTED_LINKTYPES:
            ip_from_frame(frame, lt)
        ip = ip_from_frame(frame)
        for raw in (ip, frame):
            if raw is not None:
                parse(raw)
                for pp in PPS:
                    pp.vectorize([(0.0, raw, 0), (0.01, raw, 1)])
        self.h.push(frame, 1 + self.n % 3)
        self.n += 1
        if self.n % 500 == 0:       # check the invariants, start a fresh gateway
            self.h.finish()
            self.h = self._mk()
        elif self.h.eng.metrics.total("packet_ins", "failed"):   # one series, every frame
            raise AssertionError(self.h.eng.faults.describe())


def run_hypothesis(iterations: int, seed: int | None, seconds: float | None = None) -> int:
    from fuzz.frames import frames
    from fuzz.runner import fuzz_seed, run_seeded

    target = Target()
    seed = fuzz_seed(seed)
    print(f"seed {seed}, {iterations} frames")
    run_seeded(frames(), target, iterations, seed, seconds, show=lambda f: (f or b"").hex())
    target.h.finish()
    print(f"ok: {target.n} frames, no finding")
    return 0


def run_atheris(argv: list[str]) -> int:
    import atheris  # noqa: F401  (pip install atheris)

    target = Target()
    atheris.instrument_all()        # coverage feedback for the already imported modules

    def one(data: bytes) -> None:
        target(bytes(data))

    atheris.Setup([sys.argv[0], *argv], one)
    atheris.Fuzz()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=5000)
    p.add_argument("--seed", type=int)
    p.add_argument("--atheris", action="store_true", help="libFuzzer via atheris; "
                   "other arguments go to libFuzzer")
    a, rest = p.parse_known_args(argv)
    if a.atheris:
        return run_atheris(rest)
    return run_hypothesis(a.iterations, a.seed)


if __name__ == "__main__":
    sys.exit(main())
