"""`egw policy init|check|show|tc`: thin wrappers over the policies library."""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from .errors import PolicyError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("policy", help="per-class QoS policy: init, check, show, tc",
                              description="Create, validate and inspect QoS policy files "
                                          "(reference: docs/policies.md).")
    sub = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)

    init = sub.add_parser("init", help="write a commented policy for a model's classes")
    init.add_argument("--model", metavar="DIR",
                      help="model bundle directory (its labels.json); default: the embedded "
                           "default model, else its six classes")
    init.add_argument("--profile", default="smart-home", choices=["smart-home", "strict"])
    init.add_argument("--uplink-kbps", type=int, default=20000, metavar="N",
                      help="upload speed of the WAN link in kbit/s (default 20000)")
    init.add_argument("--out", "-o", metavar="FILE", help="write here instead of stdout")
    init.add_argument("--force", action="store_true", help="overwrite an existing --out FILE")
    init.set_defaults(func=cmd_init)

    check = sub.add_parser("check", help="validate a policy file; explain every error")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--model", metavar="DIR",
                       help="also check class names against the model's labels.json")
    check.add_argument("--device-model", metavar="DIR",
                       help="also check device_types names against this device model's types "
                            "and kinds (e.g. classifier/models/devices)")
    check.add_argument("--allow-unlisted", action="store_true",
                       help="model classes with no entry are warnings, not errors")
    check.set_defaults(func=cmd_check)

    show = sub.add_parser("show", help="print the enforcement each class gets")
    show.add_argument("file", metavar="FILE", nargs="?",
                      help="policy file (default: the shipped smart_home.yaml)")
    show.add_argument("--model", metavar="DIR", help="include the model's classes")
    show.add_argument("--mac", help="as seen for this LAN device")
    show.add_argument("--ip", help="as seen for this LAN device")
    show.set_defaults(func=cmd_show)

    tc = sub.add_parser("tc", help="print the tc commands for the WAN HTB classes")
    tc.add_argument("file", metavar="FILE", nargs="?",
                    help="policy file (default: the shipped smart_home.yaml)")
    tc.add_argument("--dev", required=True, help="WAN interface")
    tc.set_defaults(func=cmd_tc)


def _default_model_labels() -> list[str] | None:
    spec = importlib.util.find_spec("classifier")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        f = Path(loc) / "models" / "default" / "labels.json"
        if f.is_file():
            from .loader import load_labels
            return load_labels(f)
    return None


def cmd_init(args: argparse.Namespace) -> int:
    from .generate import DEFAULT_LABELS, generate_policy
    from .loader import load_labels

    if args.model:
        labels = load_labels(args.model)
    else:
        labels = _default_model_labels() or list(DEFAULT_LABELS)
    if args.uplink_kbps <= 0:
        raise PolicyError(f"--uplink-kbps must be positive, got {args.uplink_kbps}")
    text = generate_policy(labels, args.profile, args.uplink_kbps)
    if not args.out:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    if out.exists() and not args.force:
        raise PolicyError(f"{out}: already exists (use --force to overwrite)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise PolicyError(f"{out}: cannot write: {e.strerror or e}") from None
    print(f"wrote {out} ({args.profile} profile, {len(labels)} classes: {', '.join(labels)})",
          file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .loader import check_policy_file, load_device_names, load_labels

    labels = load_labels(args.model) if args.model else None
    names = load_device_names(args.device_model) if args.device_model else None
    policy, issues = check_policy_file(args.file, labels, args.allow_unlisted, device_names=names)
    for issue in issues:
        print(str(issue), file=sys.stderr if issue.severity == "error" else sys.stdout)
    if policy is None:
        n = sum(1 for i in issues if i.severity == "error")
        print(f"{args.file}: {n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return 1
    print(f"{args.file}: OK ({len(policy.classes)} classes + default, "
          f"{len(policy.devices)} device overrides, {len(policy.device_types)} device types, uplink {policy.wan.uplink_kbps} kbit/s "
          f"in {len(policy.wan.classes)} WAN classes)")
    return 0


def _policy_file(arg: str | None) -> str:
    if arg:
        return arg
    from . import DEFAULT_POLICY_PATH
    return str(DEFAULT_POLICY_PATH)


def cmd_show(args: argparse.Namespace) -> int:
    from .enforcement import enforcement_for
    from .loader import load_labels, load_policy

    policy = load_policy(_policy_file(args.file))
    labels = load_labels(args.model) if args.model else []
    names = list(policy.classes) + [x for x in labels if x not in policy.classes]
    names.append("unknown" if "unknown" not in names else "default")
    for name in names:
        e = enforcement_for(policy, name, mac=args.mac, ip=args.ip)
        wan = policy.wan.class_for_dscp(e.dscp).name if e.action == "allow" else "-"
        print(f"{name:<16} {e.describe()}  [wan: {wan}]")
    return 0


def cmd_tc(args: argparse.Namespace) -> int:
    import shlex

    from .loader import load_policy
    from .wan import tc_commands, tc_teardown

    policy = load_policy(_policy_file(args.file))
    for argv in tc_teardown(args.dev):
        print(shlex.join(argv) + " 2>/dev/null || true")
    for argv in tc_commands(policy.wan, args.dev):
        print(shlex.join(argv))
    return 0
