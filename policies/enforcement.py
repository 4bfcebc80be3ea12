"""The pure function (policy, class, device) -> enforcement that the gateway installs.

The gateway's rule builder turns an :class:`Enforcement` into OpenFlow: ``drop`` ->
a drop rule; ``rate_kbps`` -> a meter with one drop band (``burst_kb`` its burst
size in kilobits, None: the switch's default), shared by every session of the
class (``meter_scope='class'``; key it by :attr:`Enforcement.meter_key`) or one per
session; ``dscp`` -> ``set_field:ip_dscp`` (None: leave unchanged); ``queue_id`` ->
``set_queue`` (ignored by Open vSwitch's userspace datapath: priority there comes
from the DSCP mark and the WAN HTB classes); the timeouts -> the flow entries'.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from classifier.bundle import UNKNOWN

from .schema import ClassOverride, Device, DeviceType, Policy


@dataclass(frozen=True)
class Enforcement:
    action: Literal["allow", "drop"]
    rate_kbps: int | None
    burst_kb: int | None
    meter_scope: Literal["class", "session"]
    dscp: int | None
    queue_id: int | None
    idle_timeout: int
    hard_timeout: int
    cls: str
    # Extensions (keyword-only in spirit: defaults so positional use above still works).
    devices: tuple[str, ...] = ()   # labels of the device overrides that applied

    @property
    def meter_key(self) -> tuple | None:
        """What identifies the meter to (re)use: None when there is no meter.
        Class scope: sessions with the same key share one meter."""
        if self.action == "drop" or self.rate_kbps is None:
            return None
        if self.meter_scope == "session":
            return ("session", self.rate_kbps, self.burst_kb)
        return ("class", self.cls, self.devices, self.rate_kbps, self.burst_kb)

    def changes_from(self, other: "Enforcement | None") -> list[tuple[str, Any, Any]]:
        """``[(field, other's value, this value)]`` for the fields that differ."""
        if other is None:
            return [(f.name, None, getattr(self, f.name)) for f in fields(self)]
        return [(f.name, getattr(other, f.name), getattr(self, f.name))
                for f in fields(self) if getattr(other, f.name) != getattr(self, f.name)]

    def describe(self) -> str:
        """One line for logs: ``voip: allow dscp=46 idle=30s``."""
        if self.action == "drop":
            return f"{self.cls}: drop idle={self.idle_timeout}s"
        parts = [f"{self.cls}: allow"]
        if self.rate_kbps is not None:
            burst = f" burst={self.burst_kb}kb" if self.burst_kb is not None else ""
            parts.append(f"rate={self.rate_kbps}kbit/s{burst} per {self.meter_scope}")
        parts.append(f"dscp={'keep' if self.dscp is None else self.dscp}")
        if self.queue_id is not None:
            parts.append(f"queue={self.queue_id}")
        parts.append(f"idle={self.idle_timeout}s hard={self.hard_timeout}s")
        if self.devices:
            parts.append(f"device={','.join(self.devices)}")
        return " ".join(parts)


_FIELDS = ("action", "rate_limit", "dscp", "queue", "idle_timeout", "hard_timeout")


def _apply(base: dict[str, Any], override: ClassOverride | None) -> bool:
    if override is None:
        return False
    changed = override.overridden()
    base.update(changed)
    return bool(changed)


def resolve(policy: Policy, class_name: str, devices: tuple[Device, ...] | list[Device] = (),
            device_type: tuple[str, DeviceType] | None = None) -> Enforcement:
    """Enforcement for ``class_name`` with the device type's entry (``(name, entry)``),
    then the given device entries applied in order."""
    entry_name, entry = policy.entry(class_name)
    values: dict[str, Any] = {k: getattr(entry, k) for k in _FIELDS}
    applied: list[str] = []
    if device_type is not None:
        tname, t = device_type
        hit = _apply(values, t.all)
        hit |= _apply(values, t.classes.get(class_name))
        if entry_name == "default" and class_name != "default":
            hit |= _apply(values, t.classes.get("default"))
        if hit:
            applied.append(f"type:{tname}")
    for dev in devices:
        hit = _apply(values, dev.all)
        hit |= _apply(values, dev.classes.get(class_name))
        if entry_name == "default" and class_name != "default":
            hit |= _apply(values, dev.classes.get("default"))
        if hit:
            applied.append(dev.label)
    return _build(values, entry_name, tuple(applied))


def overload_action(policy: Policy, mac: str | None = None, ip: str | None = None,
                    device_type: tuple[str, ...] = ()) -> str:
    """``drop`` when any class entry (or ``default``) that applies to the device ``mac`` /
    ``ip`` sets ``on_overload: drop``, after the overrides that apply to its sessions (its
    ``device_types`` entry, then its MAC/IP device entries, as :func:`resolve` orders
    them); else ``forward``. What the gateway does with the unclassified sessions of a
    device over its new-session quota: they could be of any class, so one entry that
    would rather drop decides."""
    overrides = []
    hit = policy.device_type_entry(device_type)
    if hit is not None:
        overrides.append(hit[1])
    overrides += matching_devices(policy, mac, ip)
    for name in [*policy.classes, UNKNOWN, "default"]:
        _, entry = policy.entry(name)
        value = entry.on_overload
        for over in overrides:
            for o in (over.all, over.classes.get(name)):
                if o is not None and "on_overload" in o.model_fields_set:
                    value = o.on_overload
        if value == "drop":
            return "drop"
    return "forward"


class PolicyEnforcer:
    """One policy's answers for the gateway engine: ``enforcer(class, mac, ip,
    confidence=)`` is :func:`enforcement_for` (with the device's type when a device table
    knows it), ``enforcer.on_overload(mac, ip)`` :func:`overload_action`."""

    def __init__(self, policy: Policy, device_type_of=None):
        #: ``device_type_of(mac)``: the ``device_types`` names of a LAN device (the
        #: gateway's device table), or None
        self.policy, self.device_type_of = policy, device_type_of

    def _kinds(self, mac: str | None) -> tuple[str, ...]:
        return tuple(self.device_type_of(mac)) if self.device_type_of is not None else ()

    def __call__(self, class_name: str, mac: str | None = None, ip: str | None = None,
                 confidence: float | None = None) -> Enforcement:
        return enforcement_for(self.policy, class_name, mac, ip, confidence,
                               device_type=self._kinds(mac))

    def on_overload(self, mac: str | None = None, ip: str | None = None) -> str:
        return overload_action(self.policy, mac, ip, device_type=self._kinds(mac))


def _build(v: dict[str, Any], cls: str, devices: tuple[str, ...]) -> Enforcement:
    rl = v["rate_limit"]
    if v["action"] == "drop":
        return Enforcement("drop", None, None, "class", None, None,
                           v["idle_timeout"], v["hard_timeout"], cls, devices)
    return Enforcement(
        action="allow",
        rate_kbps=rl.kbps if rl else None,
        burst_kb=rl.burst_kb if rl else None,
        meter_scope=rl.scope if rl else "class",
        dscp=v["dscp"],
        queue_id=v["queue"],
        idle_timeout=v["idle_timeout"],
        hard_timeout=v["hard_timeout"],
        cls=cls,
        devices=devices,
    )


def matching_devices(policy: Policy, mac: str | None = None, ip: str | None = None
                     ) -> tuple[Device, ...]:
    """The device entries that match ``mac`` (any case/separator) or ``ip``, in file order."""
    if not policy.devices or (not mac and not ip):
        return ()
    return tuple(d for d in policy.devices if d.matches(mac, ip))


def enforcement_for(policy: Policy, class_name: str, mac: str | None = None,
                    ip: str | None = None, confidence: float | None = None,
                    device_type: tuple[str, ...] = ()) -> Enforcement:
    """What the gateway installs for a session of ``class_name`` from/to the LAN
    device ``mac``/``ip``.  Unknown and unlisted classes get the ``default`` entry
    (``cls='default'``).  Device entries matching by MAC or IP (CIDR too) override
    fields: ``all`` for every class, ``classes.<name>`` for one class, in file order,
    later entries winning.  A drop carries no rate, DSCP or queue.

    ``confidence`` is the model's confidence in ``class_name``; when the class entry
    sets ``min_confidence`` and the session falls below it, the session is treated as
    an unlisted class (the ``default`` entry, device ``all`` and ``default`` overrides).

    ``device_type``: the names the device is known by, most specific first (its type and
    kind from the device model, or ``("unknown_device",)``): the first with a
    ``device_types`` entry overrides the class entry, before the MAC/IP device entries."""
    if confidence is not None and class_name in policy.classes:
        floor = policy.classes[class_name].min_confidence
        if floor is not None and confidence < floor:
            class_name = LOW_CONFIDENCE
    return resolve(policy, class_name, matching_devices(policy, mac, ip),
                   policy.device_type_entry(device_type))


#: The class name a session is treated as when its label is below ``min_confidence``:
#: the classifier's own "no class" label.
LOW_CONFIDENCE = UNKNOWN


def enforcement_table(policy: Policy, labels: list[str] | None = None
                      ) -> dict[str, Enforcement]:
    """``{class: Enforcement}`` for every class of the policy (and ``labels``), plus
    ``default``, with no device overrides."""
    names = list(policy.classes) + [x for x in (labels or []) if x not in policy.classes]
    table = {n: enforcement_for(policy, n) for n in names}
    table["default"] = resolve(policy, "default")
    return table
