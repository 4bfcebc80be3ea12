"""Hostile policy texts for the policy-loader fuzzing (tests/unit/test_fuzz_policy.py,
fuzz/fuzz_policy.py): mutations of the shipped policies (lines dropped, duplicated,
swapped, re-indented, values replaced with odd YAML) and raw YAML-ish garbage."""
from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
SEEDS = [(REPO / "policies" / n).read_text() for n in ("smart_home.yaml", "strict.yaml")]

ODD_VALUES = ["", "~", "null", "[]", "{}", "-1", "0", "1e309", ".nan", "0x10", "0b1",
              "10:22:33:44:55:59", "'EF'", "EF", "AF41", "99", "-", "*a", "&a x", "!!binary AA==",
              "!!python/object:os.system x", "[1, [2, [3]]]", "{a: {b: {c: d}}}", "\"\\x00\"",
              "yes", "no", "on", "off", "2001:db8::1", "10.0.0.0/8", "'" + "x" * 300 + "'",
              "\t", "|\n  multi", ">-\n  folded", "? complex\n: key"]


@st.composite
def policy_texts(draw) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=400))
    lines = draw(st.sampled_from(SEEDS)).splitlines()
    for _ in range(draw(st.integers(0, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "swap", "indent", "value", "key", "byte"]))
        line = lines[i]
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, line)
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "indent":
            lines[i] = " " * draw(st.integers(0, 7)) + line.lstrip()
        elif op == "value" and ":" in line:
            lines[i] = line.split(":", 1)[0] + ": " + draw(st.sampled_from(ODD_VALUES))
        elif op == "key" and ":" in line:
            k, v = line.split(":", 1)
            lines[i] = k[: len(k) - len(k.lstrip())] + draw(st.sampled_from(
                ["default", "classes", "devices", "wan", "version", "x", "rate_limit", "kbps",
                 "dscp", "action", "mac", "ip", "scope", "burst_kb", "0", "''", "[a]"])) + ":" + v
        elif op == "byte" and line:
            p = draw(st.integers(0, len(line) - 1))
            lines[i] = line[:p] + draw(st.sampled_from(["\x00", "\ufeff", ":", "#", "\"", "'",
                                                         "{", "[", "\t", "%", "@"])) + line[p + 1:]
    return "\n".join(lines) + "\n"
