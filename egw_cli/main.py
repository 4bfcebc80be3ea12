"""`egw` console script.

Each package owns the subcommands of its own domain in a ``cli`` module that
exposes ``register(subparsers)``; this module only assembles them. Heavy
imports (TensorFlow, Mininet) happen inside the subcommand handlers, so
``egw --help`` stays fast and the controller's runtime never pulls in
TensorFlow.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Modules that contribute subcommands, in the order `egw --help` lists them.
REGISTRARS = [
    "classifier.cli",
    "classifier.cli_models",
    "policies.cli",
    "ryu_apps.cli",
    "topologies.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="egw",
        description="sdn-egw: SDN edge gateway for smart homes (classify encrypted "
        "traffic by application, enforce per-class QoS and firewall rules).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in REGISTRARS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # the exact command line, recorded in datasets and cards (also when called as a function)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Errors the user can act on (bad pcap, YAML or model file, bad option)
        # carry ``user_facing = True`` and a message naming the file and the
        # problem: print that one line, no traceback.
        if getattr(exc, "user_facing", False):
            print(f"egw: error: {exc}", file=sys.stderr)
            return 2
        raise
    return int(rc or 0)


class UserError(Exception):
    """A bad option or input given to `egw`; printed as one line."""

    user_facing = True


if __name__ == "__main__":
    sys.exit(main())
