"""Fuzzing the policy loader (hypothesis, deterministic in CI; EGW_FUZZ_SCALE=10 for a
longer run): whatever the text, ``parse_policy``/``load_policy`` either return a policy
that ``enforcement_for`` can use for every class, or raise ``PolicyError`` whose message
names the file -- never another exception; a rejected file leaves the running policy."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings

from fuzz.policy_gen import SEEDS, policy_texts
from policies.enforcement import enforcement_for
from policies.errors import PolicyError
from policies.loader import load_policy, parse_policy
from policies.reload import PolicyHolder

SCALE = max(1, int(os.environ.get("EGW_FUZZ_SCALE", "1")))


def check(text: str, file: str = "fuzz.yaml"):
    try:
        pol = parse_policy(text, file)
    except PolicyError as exc:
        assert str(exc).startswith(file), str(exc)
        assert exc.user_facing
        return None
    for cls in [*pol.classes, "unknown", "never-heard-of"]:
        e = enforcement_for(pol, cls, "02:00:00:00:00:01", "10.0.0.1")
        assert e.action in ("allow", "drop")
    return pol


@settings(max_examples=300 * SCALE, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=policy_texts())
def test_policy_loader_never_crashes(text):
    check(text)


def test_seeds_load_and_bad_file_keeps_running_policy(tmp_path):
    for s in SEEDS:
        assert check(s) is not None
    p = tmp_path / "p.yaml"
    p.write_text(SEEDS[0])
    holder = PolicyHolder(p)
    good = holder.current
    for bad in ("\x00\x01", "version: 1\nclasses: [\n", "default: {action: maybe}\n"):
        p.write_text(bad)
        res = holder.reload()
        assert res.error and str(p) in res.error and holder.current is good
    p.write_bytes(b"\xff\xfe\x00garbage")
    res = holder.reload()
    assert res.error and str(p) in res.error and holder.current is good


def test_regression_non_utf8_file_is_named(tmp_path):
    p = tmp_path / "latin1.yaml"
    p.write_bytes("version: 1\n# caf\xe9\n".encode("latin-1"))
    try:
        load_policy(p)
    except PolicyError as exc:
        assert str(p) in str(exc)


def test_regression_control_character_is_a_policy_error():
    """Found by the fuzzer: PyYAML's reader rejects NUL and other control characters
    when the loader is built, outside the loader's error handling: a bare ReaderError
    escaped ``load_policy`` (and ``PolicyHolder.reload``)."""
    for text in ("\x00", "version: 1\x07\n", "default: {action: allow}\x1b\n"):
        try:
            parse_policy(text, "ctl.yaml")
        except PolicyError as exc:
            assert str(exc).startswith("ctl.yaml") and "invalid YAML" in str(exc)
        else:
            raise AssertionError("accepted a control character")
