"""`egw gateway`: run the gateway app under ryu-manager (a convenience over
``ryu-manager ryu_apps/egw.py``; every extra argument goes to ryu-manager)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from re import error as re_error

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

    d = sub.add_parser(
        "decisions", help="read the gateway's audit trail (--egw-decision-log)",
        description="Print records of the decision log (JSON lines: decisions, policy and "
        "model changes, restores), oldest first, rotated files included.")
    dsub = d.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, helptext in (("tail", "the last records (-f: then follow)"),
                           ("grep", "records matching a regex and/or key=value fields")):
        q = dsub.add_parser(name, help=helptext)
        q.add_argument("--log", default=os.environ.get("EGW_DECISION_LOG", ""),
                       help="the log file (default: $EGW_DECISION_LOG)")
        q.add_argument("-n", "--lines", type=int, default=20 if name == "tail" else None,
                       help="at most this many (the last ones)")
        if name == "grep":
            q.add_argument("pattern", nargs="?", default=None,
                           help="regex searched in each JSON line")
        q.add_argument("--field", "-e", action="append", default=[], metavar="KEY=VALUE",
                       help="keep records whose KEY equals VALUE (as text), e.g. "
                            "event=policy, class=p2p; repeatable")
        if name == "tail":
            q.add_argument("-f", "--follow", action="store_true",
                           help="keep printing records as they are written")
        q.set_defaults(func=_decisions)


def _decisions(args) -> int:
    import json
    import time

    from ryu_apps.gateway import audit

    if not args.log:
        raise _UsageError("no log: give --log PATH or set EGW_DECISION_LOG")
    fields = {}
    for kv in args.field:
        k, sep, v = kv.partition("=")
        if not sep:
            raise _UsageError(f"--field {kv!r}: expected KEY=VALUE")
        fields[k] = v
    if not audit.files(args.log):
        raise _UsageError(f"{args.log}: no such decision log")
    pattern = getattr(args, "pattern", None)
    try:
        recs = audit.select(args.log, pattern, fields, args.lines)
    except re_error as exc:
        raise _UsageError(f"bad pattern {pattern!r}: {exc}") from None
    for r in recs:
        print(json.dumps(r, sort_keys=True), flush=True)
    if not getattr(args, "follow", False):
        return 0
    path = Path(args.log)
    fh = open(path, encoding="utf-8", errors="replace")
    fh.seek(0, os.SEEK_END)
    ino = os.fstat(fh.fileno()).st_ino
    while True:                      # until Ctrl-C
        line = fh.readline()
        if line:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if audit.matches(rec, None, fields):
                print(json.dumps(rec, sort_keys=True), flush=True)
            continue
        time.sleep(0.5)
        try:
            if os.stat(path).st_ino != ino:           # rotated: open the new file
                fh.close()
                fh = open(path, encoding="utf-8", errors="replace")
                ino = os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            pass


class _UsageError(ValueError):
    user_facing = True


def _run(args) -> int:
    exe = Path(sys.executable).parent / "ryu-manager"
    argv = [str(exe), *with_user_flags(args.ryu_args), str(EGW_APP)]
    os.execv(argv[0], argv)
    return 0  # not reached
