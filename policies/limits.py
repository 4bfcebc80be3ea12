"""Limits that keep a hostile or unlucky policy file from hanging or exhausting the
gateway (docs/operations.md, "Limits"): file size, nesting depth, alias expansion
and parse time.  ``EGW_POLICY_MAX_BYTES`` and ``EGW_POLICY_PARSE_TIMEOUT`` in the
environment override the defaults (for ``ryu-manager`` and ``egw`` alike)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import PolicyError

MAX_BYTES = 1 << 20            # 1 MiB: PyYAML parses about 100 KB/s, i.e. ~10 s
MAX_DEPTH = 50                 # a real policy nests 6 levels deep
MAX_ALIAS_NODES = 10_000       # nodes that aliases may add when expanded
PARSE_TIMEOUT = 15.0           # seconds, for the gateway's loads and reloads


@dataclass(frozen=True)
class PolicyLimits:
    max_bytes: int = MAX_BYTES
    max_depth: int = MAX_DEPTH
    max_alias_nodes: int = MAX_ALIAS_NODES
    parse_timeout: float = PARSE_TIMEOUT

    @classmethod
    def from_env(cls, environ: dict | None = None) -> PolicyLimits:
        env = os.environ if environ is None else environ
        return cls(max_bytes=int(_env_number(env, "EGW_POLICY_MAX_BYTES", MAX_BYTES)),
                   parse_timeout=_env_number(env, "EGW_POLICY_PARSE_TIMEOUT", PARSE_TIMEOUT))


def _env_number(env, name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise PolicyError(f"{name}={raw!r}: expected a positive number")
    return value
