"""`egw emulate`: run a Mininet scenario against the real gateway and report."""
from __future__ import annotations

import json
from pathlib import Path

TOPOS = ("basic",)


def register(sub) -> None:
    p = sub.add_parser(
        "emulate",
        help="run a Mininet scenario through the real gateway and write a report",
        description="Start a private Open vSwitch, `ryu-manager ryu_apps/egw.py` and a Mininet "
        "topology; send traffic; measure; tear down only what was started. Needs root.",
    )
    p.add_argument("--topo", choices=TOPOS, default="basic")
    p.add_argument("--duration", type=float, default=3.0, help="seconds of traffic (default 3)")
    p.add_argument("--report", type=Path, default=Path("reports/basic"),
                   help="report directory (default reports/basic)")
    p.set_defaults(func=_emulate)


def _emulate(args) -> int:
    from topologies import basic

    res = basic.run(duration=args.duration, report_dir=args.report)
    print(f"ping loss: {res['ping_loss_percent']}%   TCP through the gateway: "
          f"{res.get('tcp_mbps', 'failed')} Mbit/s")
    print(f"report: {args.report / 'basic.json'}")
    return 0 if res["ping_loss_percent"] == 0 and "tcp_mbps" in res else 1
