"""An in-memory model of an OpenFlow 1.3 switch's tables and meters.

Executes the plain :class:`~ryu_apps.gateway.rules.FlowRule` /
:class:`~ryu_apps.gateway.rules.MeterRule` messages the gateway logic returns and
answers "where does this packet go, through which meter, with which DSCP, is a
copy sent to the controller" so tests assert behaviour rather than message bytes.
Exact-match fields only (what the gateway uses); highest priority wins; a table
miss with no entry drops; the meter instruction runs before apply-actions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .rules import OFPP_FLOOD, FlowRule, MeterRule, PacketOut, ReadRequest


class FlowTableError(Exception):
    pass


@dataclass
class Verdict:
    outputs: list[int] = field(default_factory=list)
    to_controller: list[int] = field(default_factory=list)   # table ids that copied it
    meters: list[int] = field(default_factory=list)
    dscp: int | None = None
    queue: int | None = None
    rules: list[FlowRule] = field(default_factory=list)

    @property
    def dropped(self) -> bool:
        return not self.outputs

    @property
    def mirrored(self) -> bool:
        """Copied to the controller by the session table (table 0)."""
        return 0 in self.to_controller


class FlowTableModel:
    """Tables and meters of one switch. ``ports``: the switch's ports (for FLOOD)."""

    def __init__(self, ports: Iterable[int] = ()):
        self.ports = list(ports)
        self.tables: dict[int, list[FlowRule]] = {}
        self.meters: dict[int, MeterRule] = {}
        self.meter_adds = 0

    # ---- messages ----------------------------------------------------------
    def apply(self, messages: Iterable[FlowRule | MeterRule]) -> None:
        """Execute flow and meter messages; requests and packet-outs change no state."""
        for m in messages:
            if isinstance(m, (ReadRequest, PacketOut)):
                continue
            if isinstance(m, MeterRule):
                self._meter(m)
            else:
                self._flow(m)

    def _meter(self, m: MeterRule) -> None:
        if m.command == "add":
            if m.meter_id in self.meters:
                raise FlowTableError(f"meter {m.meter_id} already exists")
            self.meters[m.meter_id] = m
            self.meter_adds += 1
        elif m.command == "modify":
            if m.meter_id not in self.meters:
                raise FlowTableError(f"meter {m.meter_id} does not exist")
            self.meters[m.meter_id] = m
        elif m.command == "delete":
            self.meters.pop(m.meter_id, None)
            # OpenFlow: deleting a meter removes the flows that use it.
            for t, rules in self.tables.items():
                self.tables[t] = [r for r in rules if r.meter != m.meter_id]
        elif m.command == "delete_all":
            self.meters.clear()
        else:
            raise FlowTableError(f"unknown meter command {m.command}")

    def _flow(self, r: FlowRule) -> None:
        if r.command == "delete_all":
            self.tables.clear()
            return
        rules = self.tables.setdefault(r.table, [])
        same = [x for x in rules if x.priority == r.priority and x.match == r.match]
        for x in same:
            rules.remove(x)
        if r.command == "delete":
            return
        if r.command != "add":
            raise FlowTableError(f"unknown flow command {r.command}")
        if r.meter is not None and r.meter not in self.meters:
            raise FlowTableError(f"flow uses meter {r.meter}, which does not exist")
        rules.append(r)

    def remove_cookie(self, cookie: int) -> list[FlowRule]:
        """Expire the flows with ``cookie`` (as an idle timeout would); returns them."""
        gone = []
        for t, rules in self.tables.items():
            gone += [r for r in rules if r.cookie == cookie]
            self.tables[t] = [r for r in rules if r.cookie != cookie]
        return gone

    def flows(self, table: int | None = None) -> list[FlowRule]:
        if table is None:
            return [r for t in sorted(self.tables) for r in self.tables[t]]
        return list(self.tables.get(table, []))

    # ---- packets -----------------------------------------------------------
    def lookup(self, table: int, pkt: dict[str, Any]) -> FlowRule | None:
        best = None
        for r in self.tables.get(table, []):
            if all(pkt.get(k) == v for k, v in r.match.items()):
                if best is None or r.priority > best.priority:
                    best = r
        return best

    def process(self, pkt: dict[str, Any]) -> Verdict:
        """Run a packet (dict of match fields, ``in_port`` included) through the tables."""
        pkt = dict(pkt)
        v = Verdict(dscp=pkt.get("ip_dscp"))
        table = 0
        for _hop in range(16):
            r = self.lookup(table, pkt)
            if r is None:
                return v
            v.rules.append(r)
            if r.meter is not None:
                if r.meter not in self.meters:
                    raise FlowTableError(f"meter {r.meter} missing")
                v.meters.append(r.meter)
            for a in r.actions:
                if a[0] == "output":
                    port = a[1]
                    if port == OFPP_FLOOD:
                        v.outputs += [p for p in self.ports if p != pkt.get("in_port")]
                    else:
                        v.outputs.append(port)
                elif a[0] == "controller":
                    v.to_controller.append(table)
                elif a[0] == "set_field":
                    pkt[a[1]] = a[2]
                    if a[1] == "ip_dscp":
                        v.dscp = a[2]
                elif a[0] == "set_queue":
                    v.queue = a[1]
                else:
                    raise FlowTableError(f"unknown action {a}")
            if r.goto is None:
                return v
            if r.goto <= table:
                raise FlowTableError("goto_table must go forward")
            table = r.goto
        raise FlowTableError("too many tables")
