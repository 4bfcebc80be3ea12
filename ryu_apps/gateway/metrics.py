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

    def render(self) -> bytes:
        return self._root.render()


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
            "egw_packet_ins", "Packet-ins, by kind (mirror, forward, duplicate, ignored)",
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
        self.sessions_active = Gauge(
            "egw_sessions_active", "Sessions in the session table", registry=r)
        self.sessions_expired = Counter(
            "egw_sessions_expired", "Sessions freed (flow-removed or eviction)", ["why"],
            registry=r)
        self.devices = Gauge(
            "egw_devices", "LAN devices by identified type ('identifying' while the device "
            "model still collects their first packets; 'unknown_device' when unsure)",
            ["type"], registry=r)
        self.devices_quarantined = Gauge(
            "egw_devices_quarantined", "LAN devices held to DHCP, DNS and NTP", registry=r)
        self.policy_reloads = Counter(
            "egw_policy_reloads", "Policy reloads, by result (ok, rejected)", ["result"],
            registry=r)

    def switch(self, dp_id: int | None) -> SwitchMetrics:
        """This process's metrics as seen by one switch (``dp_id`` label filled in)."""
        return SwitchMetrics(self, dp_id)

    def render(self) -> bytes:
        return generate_latest(self.registry)
