"""The policy schema (pydantic v2).  See docs/policies.md for the reference.

A policy file is a YAML mapping::

    version: 1
    default: {action: allow, dscp: best-effort}      # unlisted classes (and unknown)
    unknown: {dscp: best-effort, rate_limit: {kbps: 8000}}   # optional: unfamiliar traffic
    classes:
      voip: {dscp: EF, idle_timeout: 30}
      p2p:  {dscp: CS1, rate_limit: {kbps: 5000, burst_kb: 1000, scope: class}}
    wan:
      uplink_kbps: 20000
      default_class: besteffort
      classes:
        - {name: realtime, dscp: [EF], rate_kbps: 4000, prio: 0}
        - {name: besteffort, dscp: [CS0], rate_kbps: 16000, prio: 3}
    devices:
      - {name: bp-monitor, mac: "aa:bb:cc:dd:ee:01", all: {dscp: EF}}

Models are frozen.  Cross-field rules (rates against the uplink, duplicate names,
the WAN default class ...) live in :func:`semantic_issues`; they run as model
validators too unless validation is given ``context={"defer_semantic": True}``
(the loader does that so it can report every problem with its own line).
"""
from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from classifier.bundle import UNKNOWN

from .dscp import parse_dscp, parse_dscp_or_keep

MAX_TIMEOUT = 65535          # OpenFlow idle/hard timeouts are 16-bit seconds
MAX_QUEUE_ID = 2**32 - 2     # OpenFlow queue ids are 32-bit (0xffffffff = all)
RESERVED_CLASS_NAMES = ("default", UNKNOWN)

_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$", re.I)


def _dscp_or_keep(v: Any) -> int | None:
    try:
        return parse_dscp_or_keep(v)
    except ValueError as e:
        raise PydanticCustomError("dscp", str(e)) from None


def _dscp(v: Any) -> int:
    try:
        return parse_dscp(v)
    except ValueError as e:
        raise PydanticCustomError("dscp", str(e)) from None


DscpOrKeep = Annotated[int | None, BeforeValidator(_dscp_or_keep)]
Dscp = Annotated[int, BeforeValidator(_dscp)]
Timeout = Annotated[int, Field(ge=0, le=MAX_TIMEOUT, strict=True)]
QueueId = Annotated[int, Field(ge=0, le=MAX_QUEUE_ID, strict=True)]
Kbps = Annotated[int, Field(gt=0, strict=True)]


def normalize_mac(mac: str) -> str:
    """``"AA-BB-CC-DD-EE-01"`` / ``"aabbccddee01"`` -> ``"aa:bb:cc:dd:ee:01"``."""
    text = str(mac).strip()
    if not _MAC_RE.match(text):
        raise ValueError(f"not a MAC address: {mac!r} (expected e.g. aa:bb:cc:dd:ee:01)")
    hexdigits = re.sub(r"[:-]", "", text).lower()
    return ":".join(hexdigits[i:i + 2] for i in range(0, 12, 2))


@lru_cache(maxsize=1024)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimit(_Model):
    """A meter: ``kbps`` kbit/s with a drop band, ``burst_kb`` kilobits of burst
    (None: left to the switch), shared by the whole class or one per session."""

    kbps: Kbps
    burst_kb: Kbps | None = None
    scope: Literal["class", "session"] = "class"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `rate_limit: 500` means 500 kbit/s, class scope.
        if isinstance(data, int) and not isinstance(data, bool):
            return {"kbps": data}
        return data


class ClassPolicy(_Model):
    """What happens to the sessions of one class (or to `default`)."""

    action: Literal["allow", "drop"] = "allow"
    rate_limit: RateLimit | None = None
    dscp: DscpOrKeep = None
    queue: QueueId | None = None
    idle_timeout: Timeout = 60
    hard_timeout: Timeout = 0
    # Grant this entry only when the model is at least this sure of the class; a
    # session labelled with lower confidence gets the `default` entry instead. Wrongly
    # granted priority harms every other device; wrongly withheld priority costs one
    # session a little (docs/policies.md).
    min_confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    # What happens to the not-yet-classified sessions of a device that opens new sessions
    # faster than its quota (``egw_device_session_rate``): ``forward`` them untracked
    # (default) or ``drop`` them until the overload ends. A device is dropped when any
    # entry that applies to it says ``drop`` (its sessions could be of that class).
    on_overload: Literal["forward", "drop"] = "forward"
    note: str | None = None


class ClassOverride(_Model):
    """Like :class:`ClassPolicy` with every field optional: only the fields written
    (``model_fields_set``) replace the class's own; ``rate_limit: null`` removes a
    limit, ``dscp: keep`` leaves the packet's DSCP unchanged."""

    action: Literal["allow", "drop"] | None = None
    rate_limit: RateLimit | None = None
    dscp: DscpOrKeep = None
    queue: QueueId | None = None
    idle_timeout: Timeout | None = None
    hard_timeout: Timeout | None = None
    on_overload: Literal["forward", "drop"] | None = None
    note: str | None = None

    @field_validator("action", "idle_timeout", "hard_timeout", "on_overload")
    @classmethod
    def _not_null(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            raise PydanticCustomError("null", f"{info.field_name} cannot be null here")
        return v

    def overridden(self) -> dict[str, Any]:
        """The fields this override sets (``note`` excluded)."""
        return {k: getattr(self, k) for k in self.model_fields_set if k != "note"}


def _str_list(v: Any) -> Any:
    if v is None:
        return ()
    if isinstance(v, (str, int)) and not isinstance(v, bool):
        return (str(v),)
    return v


class Device(_Model):
    """Overrides for one LAN device (or a subnet), matched by MAC or IP/CIDR.

    ``mac`` and ``ip`` accept one value or a list; the entry matches when any of
    them matches.  ``all`` applies to every class of the device, then
    ``classes[<class>]`` on top (``classes.default`` applies to the classes that
    fell back to the policy's ``default`` entry)."""

    name: str | None = None
    mac: Annotated[tuple[str, ...], BeforeValidator(_str_list)] = ()
    ip: Annotated[tuple[str, ...], BeforeValidator(_str_list)] = ()
    all: ClassOverride | None = None
    classes: dict[str, ClassOverride] = Field(default_factory=dict)

    @field_validator("mac")
    @classmethod
    def _macs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(normalize_mac(m) for m in v)

    @field_validator("ip")
    @classmethod
    def _ips(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for text in v:
            try:
                out.append(str(ipaddress.ip_network(text.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"not an IP address or CIDR network: {text!r}") from None
        return tuple(out)

    @model_validator(mode="after")
    def _needs_address(self) -> "Device":
        if not self.mac and not self.ip:
            raise PydanticCustomError("policy", "a device needs a `mac` or an `ip` to match")
        return self

    @property
    def label(self) -> str:
        """The name, else the first MAC or IP: used in logs and diffs."""
        return self.name or (self.mac[0] if self.mac else self.ip[0] if self.ip else "?")

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(_network(n) for n in self.ip)

    def matches(self, mac: str | None = None, ip: str | None = None) -> bool:
        if mac and self.mac:
            try:
                if normalize_mac(mac) in self.mac:
                    return True
            except ValueError:
                pass
        if ip and self.ip:
            try:
                addr = ipaddress.ip_address(str(ip).split("%")[0])
            except ValueError:
                return False
            return any(addr.version == n.version and addr in n for n in self.networks)
        return False


#: The ``device_types`` key for a device the model has not identified (yet, or below its
#: threshold, or with no device model at all).
UNKNOWN_DEVICE = "unknown_device"


class DeviceType(_Model):
    """What a device of one type (or kind, or ``unknown_device``) gets: ``action:
    quarantine`` holds it to DHCP, DNS and NTP until an owner approves its MAC (and,
    with ``allow_dns_named``, the hosts DNS answers name for the questions it asked:
    ``ryu_apps.gateway.dnsopen``); ``all`` and ``classes`` override class entries for
    its sessions like a device entry's (a ``devices`` entry for its MAC still wins: it
    is more specific)."""

    action: Literal["allow", "quarantine"] = "allow"
    allow_dns_named: Annotated[bool, Field(strict=True)] = True
    all: ClassOverride | None = None
    classes: dict[str, ClassOverride] = Field(default_factory=dict)
    note: str | None = None

    @model_validator(mode="after")
    def _dns_named_needs_quarantine(self) -> "DeviceType":
        if "allow_dns_named" in self.model_fields_set and self.action != "quarantine":
            raise PydanticCustomError("policy", "`allow_dns_named` applies to `action: "
                                      "quarantine` only")
        return self


class WanClass(_Model):
    """One HTB class on the WAN port: packets whose DSCP is in ``dscp`` go here.
    ``rate_kbps`` is guaranteed, ``ceil_kbps`` (default: the uplink) is the most it
    may borrow up to, ``prio`` 0 (first) .. 7 (last) orders borrowing."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=32)]
    dscp: tuple[Dscp, ...] = ()
    rate_kbps: Kbps
    ceil_kbps: Kbps | None = None
    prio: Annotated[int, Field(ge=0, le=7, strict=True)] = 3

    @field_validator("dscp", mode="before")
    @classmethod
    def _one_or_list(cls, v: Any) -> Any:
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            return (v,)
        return () if v is None else v


class Wan(_Model):
    """The uplink and its HTB classes (see :mod:`policies.wan` for the tc commands)."""

    uplink_kbps: Kbps
    default_class: str
    classes: tuple[WanClass, ...] = Field(min_length=1)
    leaf_qdisc: Literal["fq_codel", "sfq", "pfifo"] | None = None

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> "Wan":
        if not (info.context or {}).get("defer_semantic"):
            for path, msg in _wan_issues(self):
                raise PydanticCustomError("policy", msg, {"subpath": path})
        return self

    def ceil_of(self, cls: WanClass) -> int:
        return cls.ceil_kbps if cls.ceil_kbps is not None else self.uplink_kbps

    def classid(self, cls: WanClass | str) -> str:
        """``"1:10"``, ``"1:20"`` ... in file order (tc reads the minor as hex)."""
        name = cls if isinstance(cls, str) else cls.name
        for i, c in enumerate(self.classes):
            if c.name == name:
                return f"1:{0x10 * (i + 1):x}"
        raise KeyError(name)

    def get(self, name: str) -> WanClass:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def default(self) -> WanClass:
        return self.get(self.default_class)

    def class_for_dscp(self, dscp: int | None) -> WanClass:
        """The HTB class a packet marked ``dscp`` lands in (unmapped/None: default)."""
        if dscp is not None:
            for c in self.classes:
                if dscp in c.dscp:
                    return c
        return self.default


class Policy(_Model):
    """A whole policy file.  ``classes`` is keyed by the model's class names."""

    version: Literal[1] = 1
    description: str | None = None
    default: ClassPolicy = Field(default_factory=lambda: ClassPolicy(dscp=0))
    # sessions the model answers `unknown` (out of distribution or below min_confidence);
    # None: they get `default`
    unknown: ClassPolicy | None = None
    classes: dict[str, ClassPolicy] = Field(default_factory=dict)
    wan: Wan
    devices: tuple[Device, ...] = ()
    device_types: dict[str, DeviceType] = Field(default_factory=dict)

    @field_validator("device_types", mode="before")
    @classmethod
    def _none_device_types(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("devices", mode="before")
    @classmethod
    def _none_devices(cls, v: Any) -> Any:
        return () if v is None else v

    @field_validator("classes", mode="before")
    @classmethod
    def _none_classes(cls, v: Any) -> Any:
        return {} if v is None else v

    @field_validator("classes")
    @classmethod
    def _reserved(cls, v: dict[str, ClassPolicy]) -> dict[str, ClassPolicy]:
        for name in v:
            if name in RESERVED_CLASS_NAMES:
                raise PydanticCustomError(
                    "policy", "'" + name + "' cannot be a class entry: use the top-level `"
                    + name + "` entry", {"subpath": (name,)})
        return v

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> "Policy":
        if not (info.context or {}).get("defer_semantic"):
            for path, msg, severity in semantic_issues(self):
                if severity == "error":
                    raise PydanticCustomError("policy", msg, {"subpath": path})
        return self

    def entry(self, class_name: str) -> tuple[str, ClassPolicy]:
        """(entry name, entry) used for ``class_name``: its own, the ``unknown`` entry for
        ``unknown`` when the policy has one, else ``default``."""
        if class_name in self.classes:
            return class_name, self.classes[class_name]
        if class_name == UNKNOWN and self.unknown is not None:
            return UNKNOWN, self.unknown
        return "default", self.default

    def device_type_entry(self, names) -> tuple[str, DeviceType] | None:
        """The first of ``names`` (e.g. ``(type, kind)`` or ``("unknown_device",)``) that
        has a ``device_types`` entry, with it; None when none has."""
        for n in names:
            if n and n in self.device_types:
                return n, self.device_types[n]
        return None

    def warnings(self) -> list[str]:
        """Non-fatal remarks ("dotted.key: message")."""
        return [f"{'.'.join(map(str, p))}: {m}" for p, m, s in semantic_issues(self)
                if s == "warning"]


def _wan_issues(wan: Wan) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    names = [c.name for c in wan.classes]
    seen: dict[str, int] = {}
    dscp_owner: dict[int, str] = {}
    total = 0
    for i, c in enumerate(wan.classes):
        if c.name in seen:
            out.append((("classes", i, "name"), f"duplicate WAN class name {c.name!r}"))
        seen.setdefault(c.name, i)
        ceil = wan.ceil_of(c)
        if ceil > wan.uplink_kbps:
            out.append((("classes", i, "ceil_kbps"),
                        f"ceil {ceil} kbit/s exceeds the uplink ({wan.uplink_kbps} kbit/s)"))
        if c.rate_kbps > ceil:
            out.append((("classes", i, "rate_kbps"),
                        f"rate {c.rate_kbps} kbit/s exceeds the class ceil ({ceil} kbit/s)"))
        total += c.rate_kbps
        for j, d in enumerate(c.dscp):
            if d in dscp_owner and dscp_owner[d] != c.name:
                out.append((("classes", i, "dscp", j),
                            f"DSCP {d} is already mapped to WAN class {dscp_owner[d]!r}"))
            dscp_owner.setdefault(d, c.name)
    if total > wan.uplink_kbps:
        out.append((("classes",), f"the guaranteed rates add up to {total} kbit/s, more "
                                  f"than the uplink ({wan.uplink_kbps} kbit/s)"))
    if wan.default_class not in names:
        out.append((("default_class",), f"no WAN class named {wan.default_class!r} "
                                        f"(classes: {', '.join(names)})"))
    return out


def semantic_issues(policy: Policy) -> list[tuple[tuple, str, str]]:
    """Cross-field problems as ``(path, message, "error"|"warning")``; ``path`` is
    the key path from the top of the file, e.g. ``("wan", "classes", 1, "rate_kbps")``."""
    out: list[tuple[tuple, str, str]] = []
    for path, msg in _wan_issues(policy.wan):
        out.append((("wan",) + path, msg, "error"))
    entries = [(("default",), policy.default)] + [
        (("unknown",), policy.unknown)] * (policy.unknown is not None) + [
        (("classes", n), c) for n, c in policy.classes.items()]
    for i, dev in enumerate(policy.devices):
        if dev.all is None and not dev.classes:
            out.append((("devices", i), "this device entry overrides nothing "
                                        "(add `all:` or `classes:`)", "warning"))
        for cname in dev.classes:
            if cname not in policy.classes and cname not in RESERVED_CLASS_NAMES:
                out.append((("devices", i, "classes", cname),
                            f"{cname!r} has no entry in `classes` (the override still "
                            "applies to sessions of that class)", "warning"))
        if dev.all is not None:
            entries.append((("devices", i, "all"), dev.all))
        entries += [(("devices", i, "classes", n), o) for n, o in dev.classes.items()]
    mapped = {x for c in policy.wan.classes for x in c.dscp}
    for path, entry in entries:
        d = entry.dscp
        if d is not None and d != 0 and d not in mapped:
            out.append((path + ("dscp",), f"DSCP {d} is not mapped to any WAN class: "
                        f"it will use the default class {policy.wan.default_class!r}",
                        "warning"))
        rl = entry.rate_limit
        if rl is not None and rl.kbps > policy.wan.uplink_kbps:
            out.append((path + ("rate_limit", "kbps"),
                        f"rate limit {rl.kbps} kbit/s is above the uplink "
                        f"({policy.wan.uplink_kbps} kbit/s)", "warning"))
        if isinstance(entry, ClassPolicy) or "hard_timeout" in entry.model_fields_set:
            ht, it = entry.hard_timeout, entry.idle_timeout
            if ht and it and it > ht:
                out.append((path + ("idle_timeout",), f"idle_timeout {it} s is longer than "
                            f"hard_timeout {ht} s", "warning"))
    return out
