"""`egw gateway`: run the gateway app under ryu-manager (a convenience over
``ryu-manager ryu_apps/egw.py``; every extra argument goes to ryu-manager)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

EGW_APP = Path(__file__).resolve().parent / "egw.py"
EGW_FLAGS = Path(__file__).resolve().parent / "egw_flags.py"


def register(sub) -> None:
    p = sub.add_parser(
        "gateway",
        help="run the gateway: ryu-manager ryu_apps/egw.py",
        description="Run `ryu-manager ryu_apps/egw.py` with the given ryu-manager options "
        "(e.g. --ofp-tcp-listen-port 6653 --egw-model DIR --egw-policy FILE --egw-wan-port "
        "s1-eth3 --egw-api-token T, or --config-file egw.conf); see docs/gateway.md.",
    )
    p.add_argument("ryu_args", nargs="*", metavar="RYU_ARG",
                   help="options passed to ryu-manager (put them after --)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    exe = Path(sys.executable).parent / "ryu-manager"
    extra = list(args.ryu_args)
    if "--user-flags" not in extra:  # makes --egw-* options known on the command line
        extra = ["--user-flags", str(EGW_FLAGS), *extra]
    argv = [str(exe), *extra, str(EGW_APP)]
    os.execv(argv[0], argv)
    return 0  # not reached
