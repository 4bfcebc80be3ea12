"""Hostile policy texts for the policy-loader fuzzing (tests/unit/test_fuzz_policy.py,
tests/unit/test_fuzz_ci.py, fuzz/fuzz_policy.py): mutations of the shipped policies
(lines dropped, duplicated, swapped, re-indented, values replaced with odd YAML), raw
YAML-ish garbage, and the resource attacks the loader's limits exist for: deep
nesting, anchors and aliases (bombs, recursive, merge keys) and large files."""
from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from policies.limits import MAX_BYTES

REPO = Path(__file__).resolve().parents[1]
SEEDS = [(REPO / "policies" / n).read_text() for n in ("smart_home.yaml", "strict.yaml")]

ODD_VALUES = ["", "~", "null", "[]", "{}", "-1", "0", "1e309", ".nan", "0x10", "0b1",
              "10:22:33:44:55:59", "'EF'", "EF", "AF41", "99", "-", "*a", "&a x", "!!binary AA==",
              "!!python/object:os.system x", "[1, [2, [3]]]", "{a: {b: {c: d}}}", "\"\\x00\"",
              "yes", "no", "on", "off", "2001:db8::1", "10.0.0.0/8", "'" + "x" * 300 + "'",
              "\t", "|\n  multi", ">-\n  folded", "? complex\n: key"]


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the one before: a few
    hundred bytes that expand to ``width ** levels`` nodes (billion laughs)."""
    names = "abcdefghijklmnopqrstuvwxyz"[:levels]
    lines = ["version: 1", f"a: &a [{','.join(['x'] * width)}]"]
    for prev, name in zip(names, names[1:]):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * width)}]")
    return "\n".join(lines) + "\n"


def deep_nesting(depth: int, flow: str = "[]") -> str:
    """A value nested ``depth`` levels deep (``[[[...]]]`` or ``{a: {a: ...}}``)."""
    if flow == "[]":
        return "version: 1\nclasses: " + "[" * depth + "]" * depth + "\n"
    return "version: 1\nclasses: " + "{a: " * depth + "1" + "}" * depth + "\n"


def padded(size: int, seed: str = SEEDS[0]) -> str:
    """A valid policy grown to ``size`` bytes by a trailing comment."""
    return seed + "#" + "x" * max(0, size - len(seed) - 2) + "\n"


@st.composite
def resource_attacks(draw) -> str:
    """Texts that attack the loader's time and memory rather than its logic."""
    kind = draw(st.sampled_from(["bomb", "deep", "deep-map", "large", "merge", "recursive",
                                 "anchors"]))
    if kind == "bomb":
        return alias_bomb(draw(st.integers(2, 12)), draw(st.integers(2, 12)))
    if kind in ("deep", "deep-map"):
        return deep_nesting(draw(st.integers(1, 6000)), "[]" if kind == "deep" else "{}")
    if kind == "large":
        size = draw(st.one_of(st.integers(1, 64 << 10), st.integers(1, 2 << 20),
                              st.integers(MAX_BYTES - 64, MAX_BYTES + 64)))
        return padded(size, draw(st.sampled_from(SEEDS)))
    if kind == "merge":
        width = draw(st.integers(1, 12))
        lines = ["version: 1", "m0: &m0 {dscp: EF, action: allow}"]
        for i in range(1, draw(st.integers(1, 8))):
            lines.append(f"m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * width)}]}}")
        return "\n".join(lines) + "\n"
    if kind == "recursive":
        return draw(st.sampled_from(["a: &a [*a]\n", "a: &a {b: *a}\n", "&a [x, *a]\n"]))
    return shared_anchor(draw(st.integers(1, 40)))


def shared_anchor(n: int) -> str:
    """A legitimate use of anchors: one rate limit shared by ``n`` extra classes."""
    first = "  c0: {dscp: CS1, rate_limit: &rl {kbps: 1000, scope: class}}\n"
    more = "".join(f"  c{i}: {{dscp: CS1, rate_limit: *rl}}\n" for i in range(1, n))
    return SEEDS[0].replace("\nclasses:\n", "\nclasses:\n" + first + more, 1)


@st.composite
def policy_texts(draw) -> str:
    pick = draw(st.integers(0, 9))
    if pick == 0:
        return draw(st.text(max_size=400))
    if pick == 1:
        return draw(resource_attacks())
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
