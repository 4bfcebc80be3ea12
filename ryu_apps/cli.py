"""`egw gateway`: run the gateway app under ryu-manager (a convenience over
``ryu-manager ryu_apps/egw.py``; every extra argument goes to ryu-manager)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

EGW_APP = Path(__file__).resolve().parent / "egw.py"


def register(sub) -> None:
    p = sub.add_parser(
        "gateway",
        help="run the gateway: ryu-manager ryu_apps/egw.py",
        description="Run `ryu-manager ryu_apps/egw.py` with the given ryu-manager options "
        "(e.g. --ofp-tcp-listen-port 6653 --wsapi-host 127.0.0.1 --config-file egw.conf).",
    )
    p.add_argument("ryu_args", nargs="*", metavar="RYU_ARG",
                   help="options passed to ryu-manager (put them after --)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    exe = Path(sys.executable).parent / "ryu-manager"
    argv = [str(exe), str(EGW_APP), *args.ryu_args]
    os.execv(argv[0], argv)
    return 0  # not reached
