"""`egw gateway`: run the gateway app under ryu-manager (a convenience over
``ryu-manager ryu_apps/egw.py``; every extra argument goes to ryu-manager)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

EGW_APP = Path(__file__).resolve().parent / "egw.py"
EGW_FLAGS = Path(__file__).resolve().parent / "egw_flags.py"


def with_user_flags(args: list[str]) -> list[str]:
    """ryu-manager parses its command line before it loads any app: prepend
    ``--user-flags egw_flags.py`` so that ``--egw-*`` options are known."""
    if "--user-flags" in args:
        return list(args)
    return ["--user-flags", str(EGW_FLAGS), *args]


def register(sub) -> None:
    p = sub.add_parser(
        "gateway",
        help="run the gateway: ryu-manager ryu_apps/egw.py",
        description="Run `ryu-manager ryu_apps/egw.py` with the given ryu-manager options "
        "(e.g. --ofp-tcp-listen-port 6653 --egw-model DIR --egw-policy FILE --egw-wan-port "
        "s1-eth3 --egw-api-token-file FILE, or --config-file egw.conf; the REST token from a "
        "mode-600 file or $EGW_API_TOKEN, not on the command line); see docs/gateway.md.",
    )
    p.add_argument("ryu_args", nargs="*", metavar="RYU_ARG",
                   help="options passed to ryu-manager (put them after --)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    exe = Path(sys.executable).parent / "ryu-manager"
    argv = [str(exe), *with_user_flags(args.ryu_args), str(EGW_APP)]
    os.execv(argv[0], argv)
    return 0  # not reached
