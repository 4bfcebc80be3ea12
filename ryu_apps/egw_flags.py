"""The gateway's options, in Ryu's own configuration (oslo.config, DEFAULT group).

In a config file (``ryu-manager --config-file egw.conf ryu_apps/egw.py``)::

    [DEFAULT]
    egw_model = /path/to/bundle
    egw_policy = /path/to/policy.yaml
    egw_wan_port = s1-eth3
    egw_api_token_file = /etc/egw/api-token    # mode 600

On the command line ``--egw-model`` etc. need Ryu to know the options before it
parses the command line, i.e. ``--user-flags ryu_apps/egw_flags.py`` first (ryu-manager
imports that file before parsing); ``egw gateway`` adds it for you.
"""
from __future__ import annotations

from oslo_config import cfg as oslo_cfg
from ryu import cfg  # ryu.cfg.CONF is its own ConfigOpts (not oslo_config.cfg.CONF)

OPTS = [
    cfg.StrOpt("egw-model", default="",
               help="model bundle directory (default: the embedded classifier/models/default; "
                    "without any bundle every session is 'unknown')"),
    cfg.StrOpt("egw-policy", default="",
               help="policy YAML (default: the embedded policies/smart_home.yaml)"),
    cfg.StrOpt("egw-wan-port", default="",
               help="WAN (uplink) port: OpenFlow port number or interface name; default: "
                    "the first port whose name contains 'wan' or 'uplink'"),
    cfg.StrOpt("egw-api-token-file", default="",
               help="file holding the token every REST endpoint but /egw/health requires "
                    "(header 'X-EGW-Token: T' or 'Authorization: Bearer T'); refused when "
                    "group or others may read it; else $EGW_API_TOKEN; no token: those "
                    "endpoints answer 403"),
    cfg.StrOpt("egw-api-token", default="", secret=True,
               help="the REST token itself (discouraged: visible in /proc/PID/cmdline; use "
                    "--egw-api-token-file or $EGW_API_TOKEN)"),
    cfg.BoolOpt("egw-metrics-open", default=False,
                help="serve /metrics without the token to loopback clients (a Prometheus "
                     "on the gateway itself)"),
    cfg.FloatOpt("egw-api-fail-delay", default=0.2, min=0.0, max=5.0,
                 help="seconds a request with a bad or missing token waits for its 401"),
    cfg.FloatOpt("egw-api-socket-timeout", default=30.0, min=0.0,
                 help="seconds a REST client connection may stay silent (mid-request or "
                      "kept alive) before it is closed (0: never)"),
    cfg.IntOpt("egw-max-sessions", default=10000, min=1,
               help="session table size (oldest sessions evicted beyond it)"),
    cfg.IntOpt("egw-mirror-max-packets", default=32, min=1,
               help="at most this many packets of a session are copied to the controller"),
    cfg.FloatOpt("egw-mirror-max-seconds", default=3.0, min=0.01,
                 help="a session is classified with what it has after this many seconds"),
    cfg.BoolOpt("egw-prefer-int8", default=True,
                help="run the bundle's model.int8.tflite when it has one"),
    cfg.BoolOpt("egw-wan-htb", default=True,
                help="set up the policy's WAN HTB classes on the WAN interface (tc)"),
    cfg.BoolOpt("egw-set-queue", default=True,
                help="emit set_queue for policy queues (ignored by OVS userspace)"),
    cfg.FloatOpt("egw-policy-watch", default=1.0, min=0.0,
                 help="seconds between checks of the policy file for changes (0: off)"),
    cfg.FloatOpt("egw-stats-interval", default=5.0, min=0.0,
                 help="seconds between flow-stats polls for session counters (0: off)"),
    cfg.IntOpt("egw-packet-in-rate", default=1000, min=0,
               help="packets/s the switch may send to the controller (OpenFlow meter "
                    "OFPM_CONTROLLER, drop band; 0: no limit)"),
    cfg.IntOpt("egw-packet-in-burst", default=200, min=0,
               help="burst of the packet-in meter, packets (0: the switch's default)"),
    cfg.IntOpt("egw-max-mirroring-per-port", default=1024, min=0,
               help="at most this many sessions per ingress port are being classified at "
                    "once; further new sessions of that port are forwarded untracked "
                    "(0: no limit)"),
    cfg.FloatOpt("egw-device-session-rate", default=50.0, min=0.0,
                 help="new sessions per second one LAN device (ingress port + MAC) may "
                      "open before it is overloaded: its packets are then no longer "
                      "copied to the controller (forwarded untracked, or dropped where the "
                      "policy says on_overload: drop) for egw-overload-seconds (0: no quota)"),
    cfg.IntOpt("egw-device-session-burst", default=200, min=1,
               help="new sessions a LAN device may open at once before its rate counts"),
    cfg.IntOpt("egw-overload-seconds", default=10, min=1,
               help="how long a device over its new-session quota stays so (the hard "
                    "timeout of its overload rules)"),
    cfg.BoolOpt("egw-restore", default=True,
                help="on the first connection of a switch, read its flows and meters back "
                     "and re-learn the sessions (a controller restart keeps established "
                     "sessions); false: clear the switch and start afresh"),
    cfg.FloatOpt("egw-restore-timeout", default=5.0, min=0.1,
                 help="seconds to wait for the read-back replies before clearing the switch"),
    cfg.StrOpt("egw-decision-log", default="",
               help="audit trail: every decision, policy and model change and restore as a "
                    "JSON line appended to this file (flushed per line; read it with "
                    "'egw decisions tail|grep'); empty: none"),
    cfg.IntOpt("egw-decision-log-max-bytes", default=10 * 1024 * 1024, min=4096,
               help="rotate the decision log before it grows past this size"),
    cfg.IntOpt("egw-decision-log-backups", default=5, min=0,
               help="rotated decision logs kept (FILE.1 ... FILE.N)"),
    cfg.FloatOpt("egw-model-watch", default=2.0, min=0.0,
                 help="seconds between checks of the model bundle's and the device model's "
                      "files (0: off); a changed bundle is reloaded, a bad one rejected (last "
                      "good kept)"),
    cfg.StrOpt("egw-device-model", default="",
               help="device model bundle (e.g. classifier/models/devices): identify each new "
                    "LAN device from its first packets; empty: every device is unknown_device"),
    cfg.StrOpt("egw-device-state", default="",
               help="JSON file the device decisions and approvals are kept in across "
                    "controller restarts (empty: kept in memory only)"),
    cfg.FloatOpt("egw-device-max-seconds", default=30.0, min=0.1,
                 help="a new device is classified with what it sent after this many seconds"),
]


def register(conf=None) -> None:
    """Register the options (as CLI options when the command line is not parsed yet)."""
    conf = conf or cfg.CONF
    try:
        conf.register_cli_opts(OPTS)
    except oslo_cfg.ArgsAlreadyParsedError:
        conf.register_opts(OPTS)


register()
