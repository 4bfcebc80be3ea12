"""DSCP code points: names (EF, AF11..AF43, CS0..CS7, best-effort ...) <-> integers.

DSCP is the 6-bit field at the top of the IPv4 TOS / IPv6 traffic-class byte:
``tos = dscp << 2``.  OpenFlow's ``ip_dscp`` field and these integers are the
6-bit value; tc's ``match ip dsfield`` wants the TOS byte (see :func:`tos_byte`).
"""
from __future__ import annotations

import re

# Standard names (RFC 2474, 2597, 3246, 5865, 8622) -> code point.
DSCP_NAMES: dict[str, int] = {
    **{f"CS{i}": 8 * i for i in range(8)},
    **{f"AF{c}{d}": 8 * c + 2 * d for c in range(1, 5) for d in range(1, 4)},
    "EF": 46,
    "VA": 44,  # VOICE-ADMIT
    "LE": 1,   # lower effort
}

# Friendly aliases a home user may write.
DSCP_ALIASES: dict[str, int] = {
    "BE": 0,
    "BEST-EFFORT": 0,
    "BESTEFFORT": 0,
    "DEFAULT": 0,
    "DF": 0,
    "LOWER-EFFORT": 1,
    "VOICE-ADMIT": 44,
    "EXPEDITED": 46,
    "EXPEDITED-FORWARDING": 46,
}

# Values meaning "do not touch the packet's DSCP" (parse to None).
KEEP_NAMES = frozenset({"KEEP", "UNCHANGED", "NONE", "LEAVE"})

_PREFERRED = {v: k for k, v in DSCP_NAMES.items() if not k.startswith("CS") or v != 0}
_PREFERRED[0] = "best-effort"


class DscpError(ValueError):
    """An unknown DSCP name or an out-of-range value."""

    user_facing = True


def parse_dscp(value: str | int) -> int:
    """``"EF"`` -> 46, ``"af41"`` -> 34, ``"best-effort"`` -> 0, ``26`` -> 26, ``"0x2e"`` -> 46.

    Names are case-insensitive, ``_`` and spaces count as ``-``.  Raises
    :class:`DscpError` (a ``ValueError``) for anything else or a value outside 0-63.
    """
    if isinstance(value, bool):
        raise DscpError(f"not a DSCP value: {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        text = value.strip()
        key = re.sub(r"[\s_]+", "-", text).upper()
        if key in DSCP_NAMES:
            return DSCP_NAMES[key]
        if key in DSCP_ALIASES:
            return DSCP_ALIASES[key]
        try:
            n = int(text, 0)
        except ValueError:
            raise DscpError(
                f"unknown DSCP name {value!r} (expected EF, AF11..AF43, CS0..CS7, "
                "best-effort, LE, VA or a number 0-63)") from None
    else:
        raise DscpError(f"not a DSCP value: {value!r}")
    if not 0 <= n <= 63:
        raise DscpError(f"DSCP value {n} out of range 0-63")
    return n


def parse_dscp_or_keep(value: str | int | None) -> int | None:
    """Like :func:`parse_dscp`, but ``None``/``keep``/``unchanged`` give ``None``."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().upper() in KEEP_NAMES:
        return None
    return parse_dscp(value)


def dscp_name(dscp: int) -> str:
    """46 -> ``"EF"``, 34 -> ``"AF41"``, 0 -> ``"best-effort"``, 5 -> ``"5"``."""
    return _PREFERRED.get(dscp, str(dscp))


def tos_byte(dscp: int) -> int:
    """The TOS / traffic-class byte carrying ``dscp`` (ECN bits zero): 46 -> 0xb8."""
    return (parse_dscp(dscp) << 2) & 0xFF
