"""Prometheus metrics of the gateway (own registry: several engines per process in tests).

Every series carries a ``dp_id`` label (the switch, 16 hex digits; empty for what is
not one switch's: reloads, errors), as Faucet labels its metrics. An engine counts
through :meth:`Metrics.switch`, a view with the same attributes whose ``dp_id`` is
filled in."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for rest.py)


def _with_dp(kind):
    """The metric class with ``dp_id`` as the first label of every metric."""
    def make(name, doc, labelnames=(), **kw):
        return kind(name, doc, ["dp_id", *labelnames], **kw)
    return make


LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                   0.05, 0.1, 0.25, 1.0)


def dp_label(dp_id: int | None) -> str:
    return "" if dp_id is None else f"{dp_id:016x}"


class _Bound:
    """One metric with its ``dp_id`` label filled in: ``.labels(other...)``, or
    ``.inc()`` / ``.set()`` / ``.observe()`` when ``dp_id`` is its only label."""

    def __init__(self, metric, dp: str):
        self._metric, self._dp = metric, dp

    def labels(self, *values):
        return self._metric.labels(self._dp, *values)

    def __getattr__(self, name):      # inc, set, observe
        return getattr(self._metric.labels(self._dp), name)


class SwitchMetrics:
    """The metrics of one switch: the attributes of :class:`Metrics`, dp_id bound."""

    def __init__(self, metrics: "Metrics", dp_id: int | None):
        self._root = metrics
        self.registry = metrics.registry
        self.dp_id = dp_id
        dp = dp_label(dp_id)
        for name, metric in vars(metrics).items():
            if name not in ("registry",):
                setattr(self, name, _Bound(metric, dp))

    def switch(self, dp_id: int | None) -> "SwitchMetrics":
        return self if dp_id == self.dp_id else SwitchMetrics(self._root, dp_id)

    def zero(self, **label_values) -> None:
        """Create these series at 0 now (``name=(label value, ...)``, ``name=()`` for a
        metric with no label but ``dp_id``): Prometheus's ``increase()`` and ``rate()``
        do not count a series' first sample, so a counter that appears at 5 is not seen
        rising (the alert rules in deploy/prometheus rely on this)."""
        for name, values in label_values.items():
            metric = getattr(self, name)
            for v in values or [None]:
                (metric if v is None else metric.labels(v)).inc(0)

    def render(self) -> bytes:
        return self._root.render()

    def values(self, name: str) -> dict[tuple[str, ...], float]:
        """This switch's series of metric ``name`` (an attribute of :class:`Metrics`):
        its labels after ``dp_id`` -> value (counters: the ``_total``). The REST views
        read counts here: Prometheus is the one store of what the gateway counts."""
        dp = dp_label(self.dp_id)
        out: dict[tuple[str, ...], float] = {}
        for family in getattr(self._root, name).collect():
            sample_name = family.name + ("_total" if family.type == "counter" else "")
            for s in family.samples:
                if s.name == sample_name and s.labels.get("dp_id") == dp:
                    out[tuple(v for k, v in s.labels.items() if k != "dp_id")] = s.value
        return out

    def total(self, name: str, *labels: str) -> int:
        """The sum of metric ``name``'s series whose labels start with ``labels``."""
        return int(sum(v for k, v in self.values(name).items() if k[:len(labels)] == labels))


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        Counter = _with_dp(_Counter)
        Gauge = _with_dp(_Gauge)
        Histogram = _with_dp(_Histogram)
        self.sessions_classified = Counter(
            "egw_sessions_classified", "Sessions classified, by class", ["cls"], registry=r)
        self.decisions = Counter(
            "egw_decisions", "Enforcement decisions, by action", ["action"], registry=r)
        self.latency = Histogram(
            "egw_classification_latency_seconds",
            "Time of one classification batch (vectorize + model)", buckets=LATENCY_BUCKETS,
            registry=r)
        self.batch_size = Histogram(
            "egw_classification_batch_size", "Sessions per classification batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.first_packet_to_rule = Histogram(
            "egw_first_packet_to_rule_seconds",
            "From a session's first packet-in to its enforcement rules being sent",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r)
        self.packet_ins = Counter(
            "egw_packet_ins",
            "Packet-ins, by kind (mirror, forward, duplicate, ignored, malformed, shed, "
            "overload, failed)",
            ["kind"], registry=r)
        self.rules_installed = Counter(
            "egw_rules_installed", "Flow rules sent to switches", registry=r)
        self.meters_installed = Counter(
            "egw_meters_installed", "Meters created on switches", registry=r)
        self.errors = Counter(
            "egw_errors", "Errors, by kind (malformed, classifier, policy, openflow, ...)",
            ["kind"], registry=r)
        self.error_repeats = Counter(
            "egw_error_repeats", "Repeats of an error cause already logged once, by kind",
            ["kind"], registry=r)
        self.sessions_restored = Counter(
            "egw_sessions_restored", "Sessions re-learnt from the switch's rules after a "
            "controller restart", registry=r)
        self.stale_removed = Counter(
            "egw_stale_removed", "Rules and meters found on the switch without a use and "
            "deleted after a controller restart, by kind (flow, meter)", ["kind"], registry=r)
        self.model_reloads = Counter(
            "egw_model_reloads", "Model bundle reloads, by result (ok, rejected)", ["result"],
            registry=r)
        self.device_model_reloads = Counter(
            "egw_device_model_reloads", "Device model bundle reloads, by result (ok, rejected)",
            ["result"], registry=r)
        self.sessions_active = Gauge(
            "egw_sessions_active", "Sessions in the session table", registry=r)
        self.sessions_expired = Counter(
            "egw_sessions_expired", "Sessions freed (flow-removed or eviction)", ["why"],
            registry=r)
        self.overloads = Counter(
            "egw_overloads", "Devices found over their new-session quota, by what their "
            "unclassified sessions get (forward, drop)", ["action"], registry=r)
        self.devices_overloaded = Gauge(
            "egw_devices_overloaded", "Devices over their new-session quota now", registry=r)
        self.policy_updates = Counter(
            "egw_policy_updates", "Enforced sessions whose rules a policy reload changed",
            registry=r)
        self.class_sessions = Counter(
            "egw_class_sessions", "Sessions that got their rules (classified or restored), "
            "by class", ["cls"], registry=r)
        self.class_active = Gauge(
            "egw_class_sessions_active", "Enforced sessions in the table, by class", ["cls"],
            registry=r)
        self.class_packets = Counter(
            "egw_class_packets", "Packets of finished sessions (both rules' counters), by class",
            ["cls"], registry=r)
        self.class_bytes = Counter(
            "egw_class_bytes", "Bytes of finished sessions, by class", ["cls"], registry=r)
        self.class_dropped = Counter(
            "egw_class_dropped_packets", "Packets of finished sessions whose action was drop, "
            "by class", ["cls"], registry=r)
        self.devices = Gauge(
            "egw_devices", "LAN devices by identified type ('identifying' while the device "
            "model still collects their first packets; 'unknown_device' when unsure)",
            ["type"], registry=r)
        self.devices_quarantined = Gauge(
            "egw_devices_quarantined", "LAN devices held to DHCP, DNS and NTP", registry=r)
        self.quarantine_dns = Counter(
            "egw_quarantine_dns", "DNS messages of quarantined devices the gateway read, by "
            "message (query, answer) and result (recorded, opened, unsolicited, own_port, "
            "other_port, no_address, ignored, malformed)", ["msg", "result"], registry=r)
        self.quarantine_hosts = Counter(
            "egw_quarantine_hosts", "Hosts opened to quarantined devices by DNS answers, by "
            "event (opened, refreshed, evicted: past the per-device bound)", ["event"],
            registry=r)
        self.policy_reloads = Counter(
            "egw_policy_reloads", "Policy reloads, by result (ok, rejected)", ["result"],
            registry=r)
        self.sessions_max = Gauge(
            "egw_sessions_max", "The session table's bound (egw-max-sessions): beyond it "
            "the oldest sessions are evicted", registry=r)
        self.switch_connected = Gauge(
            "egw_switch_connected", "1 while the switch's OpenFlow connection is up, 0 after "
            "it dropped", registry=r)
        self.packet_in_meter_dropped = Counter(
            "egw_packet_in_meter_dropped", "Packet-ins the switch's controller meter "
            "(OFPM_CONTROLLER, egw-packet-in-rate) dropped, from its meter statistics",
            registry=r)

    def switch(self, dp_id: int | None) -> SwitchMetrics:
        """This process's metrics as seen by one switch (``dp_id`` label filled in)."""
        return SwitchMetrics(self, dp_id)

    def render(self) -> bytes:
        return generate_latest(self.registry)


#: packet-in kinds of the mirror path (table 0); "forward" is table 1's
MIRROR_KINDS = ("mirror", "duplicate", "ignored", "malformed", "shed", "overload", "failed")


def engine_counts(m: SwitchMetrics) -> dict[str, int]:
    """One switch's counters as ``/egw/stats`` shows them, read from its Prometheus series."""
    kinds = {k[0]: int(v) for k, v in m.values("packet_ins").items()}
    c = {"packets": sum(kinds.get(k, 0) for k in MIRROR_KINDS),
         "forwarded": kinds.get("forward", 0), "mirrored": kinds.get("mirror", 0),
         **{k: kinds.get(k, 0) for k in ("duplicate", "ignored", "malformed", "shed", "overload",
                                "failed")},
         # the gateway's own failures (packet, preprocess, classifier, policy, ...), each
         # occurrence; malformed input is counted apart
         "errors": (m.total("errors") + m.total("error_repeats")
                    - m.total("errors", "malformed") - m.total("error_repeats", "malformed")),
         "classified": m.total("sessions_classified"),
         "policy_updates": m.total("policy_updates"),
         "restored": m.total("sessions_restored"),
         "stale_flows": m.total("stale_removed", "flow"),
         "stale_meters": m.total("stale_removed", "meter"),
         "packet_in_meter_dropped": m.total("packet_in_meter_dropped")}
    return c


CLASS_FIELDS = {"sessions": "class_sessions", "active": "class_active",
                "packets": "class_packets", "bytes": "class_bytes", "dropped": "class_dropped"}


def class_counts(m: SwitchMetrics) -> dict[str, dict[str, int]]:
    """Per class: sessions, active, packets, bytes, dropped (finished sessions' counters)."""
    out: dict[str, dict[str, int]] = {}
    for field, name in CLASS_FIELDS.items():
        for (cls,), v in m.values(name).items():
            out.setdefault(cls, dict.fromkeys(CLASS_FIELDS, 0))[field] = int(v)
    return out
