"""Live device identification and quarantine (pure logic: frames in, plain messages out).

When a MAC the gateway has not seen sends from a LAN port, it is *tracked*: rules in
table 0 copy that device's frames to the controller while the switch forwards them
(``IDENTIFY_PRIORITY``: ``eth_src``/``eth_dst`` = the MAC -> controller + goto table 1;
forwarding never waits). The frames go through :class:`classifier.devices.DeviceTrack`,
the offline build's code, until it holds ``windows * k`` usable packets or
``max_seconds`` have passed; then the device bundle classifies it (mean probability
over its windows; below the bundle's threshold: ``unknown_device``), the copy rules are
deleted and the decision is recorded (type, kind, confidence, packets used).

Quarantine: when the policy's ``device_types`` entry for the device (its type, else
its kind, else ``unknown_device`` while it is unidentified) says ``action: quarantine``
and its MAC is not approved, table 0 holds it to DHCP, DNS and NTP: priority
``QUARANTINE_ALLOW_PRIORITY`` rules let ``eth_src`` = MAC with UDP 67/547 (DHCP),
UDP/TCP 53 (DNS), UDP 123 (NTP) and ICMPv6 (neighbour discovery) go on to table 1;
``QUARANTINE_DROP_PRIORITY`` drops its other IPv4/IPv6 packets (ARP still passes). DNS
and NTP go to any address (the gateway does not know the home's resolver). With the
entry's ``allow_dns_named`` (default on) its DNS queries and the answers it receives are
also copied to the controller, and an address that an answer from another port gives
for a name the device asked is opened for the record's TTL
(``QUARANTINE_OPEN_PRIORITY``; :mod:`ryu_apps.gateway.dnsopen` says how, and what this
does not protect against). While it is being identified the quarantine rules also copy
to the controller. :meth:`DeviceTable.approve` lifts it all.

Decisions are persisted (``state_path``, JSON, written atomically on each change) and
read back at start: a device is not re-identified after a controller restart (its
setup traffic is over by then); its quarantine rules are sent again when its switch
connects (a read-back deletes the rules it does not know). Hosts opened by DNS answers
are not persisted: the next answer opens them again.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from classifier.devices import DeviceTrack, aggregate
from classifier.packets import ETH_IPV4, ETH_IPV6, PROTO_TCP, PROTO_UDP

from .dnsopen import DNS_PORT, QUARANTINE_OPEN_PRIORITY, DnsOpener  # noqa: F401 (re-exported)
from .metrics import dp_label
from .rules import FORWARD_TABLE, SESSION_TABLE, FlowRule, Message, mac_text

log = logging.getLogger("egw.devices")

IDENTIFY_PRIORITY = 200
QUARANTINE_DROP_PRIORITY = 300
QUARANTINE_ALLOW_PRIORITY = 310
#: Cookies of device rules: "ED" in the top 16 bits, the MAC below.
DEVICE_COOKIE_TAG = 0x4544 << 48
PROTO_ICMPV6 = 58
UNKNOWN_DEVICE = "unknown_device"
#: (ip version, ip_proto, destination port or None) a quarantined device may use
QUARANTINE_SERVICES = (
    (4, PROTO_UDP, 67), (4, PROTO_UDP, 53), (4, PROTO_TCP, 53), (4, PROTO_UDP, 123),
    (6, PROTO_UDP, 547), (6, PROTO_UDP, 53), (6, PROTO_TCP, 53), (6, PROTO_UDP, 123),
    (6, PROTO_ICMPV6, None),
)

IDENTIFYING, IDENTIFIED = "identifying", "identified"


def device_cookie(mac: str) -> int:
    return DEVICE_COOKIE_TAG | int(mac.replace(":", ""), 16)


def _eth(v: int) -> int:
    return ETH_IPV4 if v == 4 else ETH_IPV6


def identify_rules(mac: str, command: str = "add") -> list[FlowRule]:
    """Copy the device's frames (both directions) to the controller; the switch forwards."""
    c = device_cookie(mac)
    return [FlowRule(SESSION_TABLE, IDENTIFY_PRIORITY, {k: mac}, actions=(("controller",),),
                     goto=FORWARD_TABLE, cookie=c, command=command)
            for k in ("eth_src", "eth_dst")]


def quarantine_rules(mac: str, copy: bool = False, command: str = "add",
                     dns: bool = False) -> list[FlowRule]:
    """Hold ``eth_src`` = mac to :data:`QUARANTINE_SERVICES`; ``copy``: also to the
    controller (while the device is being identified); ``dns``: its DNS queries and the
    DNS answers sent to it are copied too (``allow_dns_named``)."""
    c = device_cookie(mac)
    acts = (("controller",),) if copy else ()
    out = []
    for v, proto, port in QUARANTINE_SERVICES:
        m = {"eth_src": mac, "eth_type": _eth(v), "ip_proto": proto}
        if port is not None:
            m[f"{'tcp' if proto == PROTO_TCP else 'udp'}_dst"] = port
        out.append(FlowRule(SESSION_TABLE, QUARANTINE_ALLOW_PRIORITY, m,
                            actions=(("controller",),) if dns and port == DNS_PORT else acts,
                            goto=FORWARD_TABLE, cookie=c, command=command))
        if dns and port == DNS_PORT:          # the answers it receives
            l4 = "tcp" if proto == PROTO_TCP else "udp"
            out.append(FlowRule(SESSION_TABLE, QUARANTINE_ALLOW_PRIORITY,
                                {"eth_dst": mac, "eth_type": _eth(v), "ip_proto": proto,
                                 f"{l4}_src": DNS_PORT}, actions=(("controller",),),
                                goto=FORWARD_TABLE, cookie=c, command=command))
    for v in (4, 6):
        out.append(FlowRule(SESSION_TABLE, QUARANTINE_DROP_PRIORITY,
                            {"eth_src": mac, "eth_type": _eth(v)}, actions=acts, cookie=c,
                            command=command))
    if copy:      # what the device receives, while identifying
        out.append(FlowRule(SESSION_TABLE, QUARANTINE_DROP_PRIORITY, {"eth_dst": mac},
                            actions=acts, goto=FORWARD_TABLE, cookie=c, command=command))
    return out


@dataclass
class Device:
    """One LAN device as the gateway knows it (``view()`` is what REST shows)."""

    mac: str
    dpid: int
    port: int
    first_seen: float
    state: str = IDENTIFYING
    type: str | None = None
    kind: str | None = None
    confidence: float = 0.0
    packets: int = 0            # usable packets the decision used
    windows: int = 0
    frames: int = 0             # frames of the device seen while identifying
    reason: str = ""            # model | timeout | no-model | no-data | restored
    decided_at: float | None = None
    quarantined: bool = False
    dns_named: bool = False     # quarantined with allow_dns_named: DNS answers open hosts
    approved: bool = False
    track: DeviceTrack | None = field(default=None, repr=False)
    model: object = field(default=None, repr=False)   # the bundle its track was cut for
    last_frames: tuple = field(default=(), repr=False)

    def names(self) -> tuple[str, ...]:
        """The ``device_types`` keys the device answers to, most specific first."""
        if self.state == IDENTIFIED and self.type and self.type != UNKNOWN_DEVICE:
            return tuple(n for n in (self.type, self.kind) if n)
        return (UNKNOWN_DEVICE,)

    def view(self) -> dict:
        return {"mac": self.mac, "dpid": f"{self.dpid:016x}", "port": self.port,
                "state": self.state, "type": self.type, "kind": self.kind,
                "confidence": round(self.confidence, 4), "packets_needed": self.packets,
                "windows": self.windows, "reason": self.reason,
                "quarantined": self.quarantined, "dns_named": self.dns_named,
                "approved": self.approved,
                "first_seen": self.first_seen, "decided_at": self.decided_at}

    def record(self) -> dict:
        d = asdict(self)
        for k in ("track", "model", "last_frames", "first_seen", "decided_at"):
            d.pop(k)
        return d


def _options(bundle) -> dict:
    from classifier.evaluate_devices import device_options
    return (device_options(bundle) or {}) if bundle is not None else {}


def _windows(bundle) -> int:
    return int(_options(bundle).get("windows", 1))


def _kinds(bundle) -> dict:
    return _options(bundle).get("kinds") or {}


class DeviceTable:
    """Every device of every switch. ``bundle``: the device model (``classifier.bundle``
    with ``device_options``) or None (every device is ``unknown_device`` at once);
    ``lookup(names) -> (name, DeviceType) | None``: the policy's ``device_types``;
    ``metrics``: the process's :class:`~ryu_apps.gateway.metrics.Metrics`; ``audit``:
    ``DecisionLog.write``. :meth:`set_bundle` swaps the device model (a reload): devices
    first seen from then on are identified with the new one; a device being identified
    finishes with the bundle its track was cut for; decisions made stay."""

    def __init__(self, bundle=None, lookup: Callable | None = None, *,
                 max_seconds: float = 30.0, max_tracking: int = 64,
                 state_path: str | os.PathLike | None = None,
                 clock: Callable[[], float] = time.monotonic, metrics=None, audit=None,
                 logger: logging.Logger | None = None):
        self.bundle = bundle
        self.lookup = lookup or (lambda names: None)
        self.max_seconds, self.max_tracking = max_seconds, max_tracking
        self.state_path = Path(state_path) if state_path else None
        self.clock, self.metrics, self.audit = clock, metrics, audit
        self.log = logger or log
        self.dns = DnsOpener(device_cookie, metrics=metrics, audit=audit, logger=self.log)
        self.devices: dict[str, Device] = {}
        self.skipped = 0        # new devices not tracked: max_tracking reached
        self.set_bundle(bundle)
        self._load()

    def set_bundle(self, bundle) -> None:
        """The device model new devices are identified with (None: none)."""
        self.bundle = bundle
        self.windows = _windows(bundle)

    # ---- persistence -----------------------------------------------------------
    def _load(self) -> None:
        if self.state_path is None or not self.state_path.is_file():
            return
        try:
            recs = json.loads(self.state_path.read_text(encoding="utf-8"))
            for r in recs.get("devices", []):
                d = Device(**{**r, "first_seen": self.clock(), "reason": r.get("reason", "")})
                if d.state == IDENTIFYING:      # cut short by the restart: decide at once
                    d.state, d.type, d.reason = IDENTIFIED, UNKNOWN_DEVICE, "restart"
                self.devices[d.mac] = d
        except (OSError, ValueError, TypeError) as exc:
            self.log.error("%s: cannot read the device state (%s); starting empty",
                           self.state_path, exc)
        self._gauge()

    def _save(self) -> None:
        if self.state_path is None:
            return
        data = {"format": "egw-devices/1",
                "devices": [d.record() for d in self.devices.values() if d.state == IDENTIFIED]}
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".devices.", dir=self.state_path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.state_path)
        except OSError as exc:
            self.log.error("%s: cannot write the device state: %s", self.state_path, exc)

    # ---- policy ----------------------------------------------------------------
    def names_of(self, mac: str | None) -> tuple[str, ...]:
        """``device_types`` keys for a session's device (``()`` for a MAC never seen on a
        LAN port, e.g. a session's remote end)."""
        d = self.devices.get((mac or "").lower())
        return d.names() if d is not None else ()

    def _wants_quarantine(self, d: Device) -> bool:
        if d.approved:
            return False
        hit = self.lookup(d.names())
        return hit is not None and hit[1].action == "quarantine"

    def _hold(self, d: Device) -> None:
        """Set ``d.quarantined`` and ``d.dns_named`` from the policy; hosts opened by DNS
        are forgotten when either goes (take :meth:`_held_rules` before)."""
        d.quarantined = self._wants_quarantine(d)
        hit = self.lookup(d.names()) if d.quarantined else None
        d.dns_named = bool(hit and hit[1].allow_dns_named)
        if not d.dns_named:
            self.dns.forget(d.mac)

    def _held_rules(self, d: Device, now: float, command: str = "add") -> list[FlowRule]:
        """The rules of a quarantined device: the quarantine's and its opened hosts'."""
        copy = d.state == IDENTIFYING
        return (quarantine_rules(d.mac, copy=copy, command=command, dns=d.dns_named)
                + self.dns.rules(d.mac, copy, now, command))

    def dns_copy(self, cookie: int) -> bool:
        """True when a table-0 packet-in with ``cookie`` was copied for the DNS of a
        quarantined device only (the engine never saw such frames before the copy: the
        adapter does not give them to it)."""
        if cookie & ~((1 << 48) - 1) != DEVICE_COOKIE_TAG:
            return False
        d = self.devices.get(mac_text((cookie & ((1 << 48) - 1)).to_bytes(6, "big")))
        return d is not None and d.dns_named and d.state != IDENTIFYING

    # ---- packets ---------------------------------------------------------------
    def observe(self, dpid: int, in_port: int, frame: bytes, wan_port: int | None = None,
                now: float | None = None) -> list[Message]:
        """Any packet-in's frame. A new unicast source on a LAN port starts a device;
        a tracked device's frames feed its track (each frame once: a frame copied by
        table 0 and missed by table 1 arrives twice)."""
        if len(frame) < 14:
            return []
        now = self.clock() if now is None else now
        src, dst = mac_text(frame[6:12]), mac_text(frame[0:6])
        msgs: list[Message] = self._dns(dpid, in_port, frame, src, dst, now)
        d = self.devices.get(src)
        if d is None and in_port != wan_port and not frame[6] & 1:
            msgs += self._new(src, dpid, in_port, now)
            d = self.devices.get(src)
        if d is None or d.state != IDENTIFYING:
            d = self.devices.get(dst)
            if d is None or d.state != IDENTIFYING:
                return msgs
        if frame in d.last_frames:
            return msgs
        d.last_frames = (d.last_frames + (bytes(frame),))[-2:]
        d.frames += 1
        d.track.add(now, bytes(frame))
        if d.track.full:
            msgs += self._decide(d, now, "model")
        return msgs

    def _dns(self, dpid: int, in_port: int, frame: bytes, src: str, dst: str,
             now: float) -> list[Message]:
        """A DNS query sent by, or an answer sent to, a quarantined device with
        ``allow_dns_named``: the hosts an accepted answer opens (``dnsopen``)."""
        msgs: list[Message] = []
        for mac, sent in ((src, True), (dst, False)):
            d = self.devices.get(mac)
            if d is not None and d.dns_named and d.dpid == dpid:
                msgs += self.dns.frame(mac, d.port, dpid, in_port, frame, sent,
                                       copy=d.state == IDENTIFYING, now=now)
        return msgs

    def _new(self, mac: str, dpid: int, port: int, now: float) -> list[Message]:
        tracking = sum(1 for d in self.devices.values() if d.state == IDENTIFYING)
        d = Device(mac, dpid, port, now)
        if self.bundle is None or tracking >= self.max_tracking:
            if self.bundle is not None:
                self.skipped += 1
            self.devices[mac] = d
            return self._decide(d, now, "no-model" if self.bundle is None else "busy")
        d.track = DeviceTrack(bytes.fromhex(mac.replace(":", "")), self.bundle.preprocess,
                              self.windows)
        d.model = self.bundle
        self.devices[mac] = d
        self._hold(d)
        self._audit("device-new", d)
        self._gauge()
        return self._held_rules(d, now) if d.quarantined else identify_rules(mac)

    def tick(self, now: float | None = None) -> list[Message]:
        """Decide devices tracked for ``max_seconds`` with what they have."""
        now = self.clock() if now is None else now
        msgs: list[Message] = []
        for d in list(self.devices.values()):
            if d.state == IDENTIFYING and now - d.first_seen >= self.max_seconds:
                msgs += self._decide(d, now, "timeout")
        self.dns.tick(now)
        return msgs

    def _decide(self, d: Device, now: float, reason: str) -> list[Message]:
        was_tracked = d.track is not None
        before = (self._held_rules(d, now) if d.quarantined else identify_rules(d.mac)
                  ) if was_tracked else []
        label, conf = UNKNOWN_DEVICE, 0.0
        if d.track is not None:
            X = d.track.vectors()
            d.packets, d.windows = len(d.track.views), len(X)
            if len(X) == 0:
                reason = "no-data"
            else:
                b = d.model
                try:
                    p = aggregate(b.predict(X))
                    i = int(p.argmax())
                    conf = float(p[i])
                    label = b.labels[i] if conf >= b.threshold else UNKNOWN_DEVICE
                except Exception as exc:      # a broken model never stops forwarding
                    self.log.warning("device %s: classification failed: %s", d.mac, exc)
                    reason = "error"
        d.state, d.type, d.confidence, d.reason = IDENTIFIED, label, conf, reason
        d.kind = _kinds(d.model).get(label) if label != UNKNOWN_DEVICE else None
        d.decided_at, d.track, d.model, d.last_frames = now, None, None, ()
        self._hold(d)
        msgs = _replace(before, self._held_rules(d, now) if d.quarantined else [])
        self._audit("device", d)
        self._gauge()
        self._save()
        return msgs

    def approve(self, mac: str) -> tuple[Device | None, list[Message]]:
        """The owner approves ``mac``: its quarantine (if any) is lifted, now and later."""
        d = self.devices.get(mac.lower())
        if d is None:
            return None, []
        msgs: list[Message] = []
        if d.quarantined:
            now = self.clock()
            msgs = _replace(self._held_rules(d, now),
                            identify_rules(d.mac) if d.state == IDENTIFYING else [])
        d.approved, d.quarantined, d.dns_named = True, False, False
        self.dns.forget(d.mac)
        self._audit("device-approved", d)
        self._gauge()
        self._save()
        return d, msgs

    def rules_for(self, dpid: int) -> list[Message]:
        """The device rules a switch should hold (after it connects or was read back)."""
        out: list[Message] = []
        now = self.clock()
        for d in self.devices.values():
            if d.dpid != dpid:
                continue
            if d.quarantined:
                out += self._held_rules(d, now)
            elif d.state == IDENTIFYING:
                out += identify_rules(d.mac)
        return out

    def requarantine(self) -> dict[int, list[Message]]:
        """After a policy change: quarantine or release identified devices to match it."""
        out: dict[int, list[Message]] = {}
        now = self.clock()
        for d in self.devices.values():
            if d.state != IDENTIFIED:
                continue
            was = (d.quarantined, d.dns_named)
            before = self._held_rules(d, now) if d.quarantined else []
            self._hold(d)
            if (d.quarantined, d.dns_named) != was:
                after = self._held_rules(d, now) if d.quarantined else []
                out.setdefault(d.dpid, []).extend(_replace(before, after))
                self._audit("device-policy", d)
        if out:
            self._gauge()
            self._save()
        return out

    # ---- views -------------------------------------------------------------------
    def view(self) -> list[dict]:
        now = self.clock()
        return [{**d.view(), "opened_hosts": self.dns.view(d.mac, now)}
                for d in sorted(self.devices.values(), key=lambda d: d.mac)]

    def _gauge(self) -> None:
        """``egw_devices{dp_id, type}`` (``identifying`` while tracked) and
        ``egw_devices_quarantined{dp_id}``, recomputed from the table."""
        if self.metrics is None:
            return
        counts: dict[tuple[int, str], int] = {}
        held: dict[int, int] = {}
        for d in self.devices.values():
            t = d.type if d.state == IDENTIFIED else IDENTIFYING
            counts[(d.dpid, t)] = counts.get((d.dpid, t), 0) + 1
            held[d.dpid] = held.get(d.dpid, 0) + int(d.quarantined)
        self.metrics.devices.clear()
        for (dpid, t), n in counts.items():
            self.metrics.devices.labels(dp_label(dpid), t).set(n)
        self.metrics.devices_quarantined.clear()
        for dpid, n in held.items():
            self.metrics.devices_quarantined.labels(dp_label(dpid)).set(n)

    def _audit(self, event: str, d: Device) -> None:
        rec = d.view()
        self.log.info("%s %s", event, json.dumps(rec, sort_keys=True, default=str))
        if self.audit is not None:
            self.audit(event, **{k: v for k, v in rec.items() if k not in ("first_seen",)})


def _replace(before: list[FlowRule], after: list[FlowRule]) -> list[FlowRule]:
    """Go from rules ``before`` to ``after``: the new ones first (sent as adds: a rule
    with the same match and priority is replaced), then deletes of the old ones no new
    rule replaced (the device is never left without its rules in between)."""
    keep = {(r.table, r.priority, tuple(sorted(r.match.items()))) for r in after}
    gone = [FlowRule(r.table, r.priority, dict(r.match), cookie=r.cookie, command="delete")
            for r in before if (r.table, r.priority, tuple(sorted(r.match.items()))) not in keep]
    return list(after) + gone
