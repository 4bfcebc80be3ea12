"""The per-class QoS policy: schema, loading with precise errors, generation from a
model's classes, and the pure function (policy, class, device) -> enforcement.

Knows nothing of OpenFlow or Ryu.  See docs/policies.md.
"""
from __future__ import annotations

from pathlib import Path

from .enforcement import (Enforcement, PolicyEnforcer, enforcement_for, enforcement_table,
                          overload_action)
from .errors import PolicyError, PolicyIssue
from .loader import check_policy_file, load_labels, load_policy, parse_policy
from .schema import ClassPolicy, Device, Policy, RateLimit, Wan, WanClass

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_POLICY_PATH = PACKAGE_DIR / "smart_home.yaml"
STRICT_POLICY_PATH = PACKAGE_DIR / "strict.yaml"

__all__ = [
    "DEFAULT_POLICY_PATH", "STRICT_POLICY_PATH", "ClassPolicy", "Device", "Enforcement",
    "PolicyEnforcer", "overload_action",
    "Policy", "PolicyError", "PolicyIssue", "RateLimit", "Wan", "WanClass",
    "check_policy_file", "enforcement_for", "enforcement_table", "load_labels",
    "load_policy", "parse_policy",
]
