"""``egw dataset build|audit`` (thin wrappers over classifier.build / classifier.audit)."""
from __future__ import annotations

import argparse
import json

from classifier.dataerrors import DataError

MASK_FIELDS = {"addresses": "zero_addresses", "ip-id": "zero_ip_id", "ttl": "zero_ttl",
               "checksums": "zero_checksums", "seq-ack": "zero_seq_ack",
               "flow-label": "zero_flow_label", "tcp-option-counters": "zero_tcp_option_counters",
               "udp-pad": "pad_udp"}
FILTER_FIELDS = {"chatter": "drop_chatter", "no-payload": "drop_no_payload",
                 "duplicates": "drop_duplicates", "retransmissions": "drop_retransmissions"}


def register(subparsers) -> None:
    p = subparsers.add_parser("dataset", help="build and audit training datasets from captures",
                              description="Build datasets (.npz) from labelled captures and audit them.")
    sub = p.add_subparsers(dest="dataset_command", metavar="SUBCOMMAND", required=True)

    b = sub.add_parser("build", help="captures (one folder per class) or an idx folder -> dataset .npz",
                       description="Read captures (DIR/<class>/*.pcap|pcapng, any link type), split "
                       "sessions, filter, mask, vectorize and write a dataset .npz with "
                       "session-disjoint train/val/test splits and a manifest. DIR may also be an "
                       "iscx-session784 idx folder (shipped train/t10k split kept). See docs/data.md.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("--input", required=True, metavar="DIR", help="class directories of captures, or an idx folder")
    b.add_argument("--taxonomy", metavar="FILE", help="YAML category -> list of directory names")
    b.add_argument("--repr", default="session784", choices=["packet1480", "session784", "image900", "kpackets"],
                   help="representation")
    b.add_argument("--out", required=True, metavar="FILE.npz", help="output dataset")
    b.add_argument("--preprocess", metavar="JSON", help="take all preprocessing options from this "
                   "preprocess.json (e.g. a bundle's); other preprocessing flags are ignored")
    b.add_argument("--layers", default="all", choices=["all", "l7"], help="masked headers + payload, or payload only")
    b.add_argument("--n-bytes", type=int, help="bytes per sample / per kpackets row (default per repr)")
    b.add_argument("--k", type=int, default=8, help="packets of kpackets")
    b.add_argument("--max-packets", type=int, default=10,
                   help="use the first N usable packets of a session (0 = all)")
    b.add_argument("--image-unit", default="packet", choices=["packet", "session"], help="image900 per packet or session")
    b.add_argument("--idle-timeout", type=float, default=60.0, help="session idle timeout (s)")
    b.add_argument("--unidirectional", action="store_true", help="unidirectional flows instead of sessions")
    b.add_argument("--no-mask", action="append", default=[], choices=sorted(MASK_FIELDS), metavar="FIELD",
                   help=f"keep a field unmasked (repeatable): {', '.join(sorted(MASK_FIELDS))}")
    b.add_argument("--zero-ports", action="store_true", help="also zero TCP/UDP ports")
    b.add_argument("--keep", action="append", default=[], choices=sorted(FILTER_FIELDS), metavar="WHAT",
                   help=f"do not filter out (repeatable): {', '.join(sorted(FILTER_FIELDS))}")
    b.add_argument("--max-per-class", type=int, metavar="N", help="at most N sessions per class (random, seeded)")
    b.add_argument("--split", default="0.8,0.1,0.1", metavar="TR,VA,TE", help="split fractions")
    b.add_argument("--min-files", type=int, default=5,
                   help="split by capture file in classes with at least this many files")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--jobs", type=int, help="worker processes (default: all cores)")
    add_ray_option(b, "read and vectorize the capture files as Ray tasks")
    b.add_argument("--skip-bad", action="store_true", help="skip unreadable captures and report them")
    b.add_argument("--strict", action="store_true", help="a capture cut mid-record is an error "
                   "(default: keep its complete records and warn)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--by", default="session", choices=["session", "device"],
                   help="sample unit: sessions of class folders, or device windows of device "
                   "folders (iot-sentinel layout: captures + _iotdevice-mac.txt; needs --repr "
                   "kpackets; service traffic and bare TCP segments are kept; split by capture)")
    b.add_argument("--windows", type=int, default=1,
                   help="--by device: windows of k usable packets per capture")
    b.add_argument("--kinds", metavar="FILE", help="--by device: YAML kind -> list of device types "
                   "(camera, plug, ...), stored with the dataset for policies")
    b.set_defaults(func=cmd_build)

    a = sub.add_parser("audit", help="leakage report: duplicates across splits, shortcut probe",
                       description="Report per-class counts, sessions and exact duplicate vectors shared "
                       "across splits, how well a RandomForest does on header bytes alone "
                       "(shortcut probe: whole IP and transport headers, TCP options included), "
                       "and with --importance which header fields a model leans on "
                       "(needs scikit-learn).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a.add_argument("dataset", metavar="FILE.npz")
    a.add_argument("--no-probe", action="store_true", help="skip the shortcut probe")
    a.add_argument("--importance", action="store_true",
                   help="per-field permutation importance: which header fields and payload byte "
                   "ranges the model leans on")
    a.add_argument("--model", metavar="DIR", help="with --importance: score this bundle (LiteRT) "
                   "instead of a forest fitted on the whole sample")
    a.add_argument("--split", default="val", choices=["val", "test"],
                   help="split the probe and the importance are scored on")
    a.add_argument("--repeats", type=int, default=2, help="shuffles per field (--importance)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    a.set_defaults(func=cmd_audit)


def add_ray_option(parser, what: str) -> None:
    """``--ray [ADDRESS]`` (the optional ``cluster`` extra; see docs/scale.md)."""
    from classifier.cluster import RAY_LOCAL
    parser.add_argument("--ray", nargs="?", const=RAY_LOCAL, default=None, metavar="ADDRESS",
                        help=f"{what} on the Ray cluster at ADDRESS (host:port of `ray start "
                        f"--head`, or auto); without ADDRESS a Ray instance on this machine "
                        f"(needs the cluster extra)")


def preprocess_from_args(args):
    from classifier.filtering import FilterOptions
    from classifier.masking import MaskOptions
    from classifier.preprocess import Preprocess
    if args.preprocess:
        return Preprocess.from_json(args.preprocess)
    mask = MaskOptions(zero_ports=args.zero_ports, **{MASK_FIELDS[f]: False for f in args.no_mask})
    filt = FilterOptions(**{FILTER_FIELDS[f]: False for f in args.keep})
    return Preprocess(repr=args.repr, layers=args.layers, n_bytes=args.n_bytes, k=args.k,
                      max_packets=args.max_packets or None, image_unit=args.image_unit,
                      idle_timeout=args.idle_timeout, bidirectional=not args.unidirectional,
                      mask=mask, filter=filt)


def _fractions(s: str) -> tuple[float, float, float]:
    try:
        v = tuple(float(x) for x in s.split(","))
    except ValueError:
        v = ()
    if len(v) != 3 or min(v) < 0 or sum(v) <= 0:
        raise DataError(f"--split {s!r}: expected three non-negative fractions like 0.8,0.1,0.1")
    return v  # type: ignore[return-value]


def cmd_build(args) -> int:
    from pathlib import Path

    from classifier.build import build_from_captures, build_from_idx, format_counts
    from classifier.idx import is_idx_folder
    argv = args.argv
    if not args.out.endswith(".npz"):
        raise DataError(f"--out {args.out}: the dataset file name must end in .npz")
    if args.max_per_class is not None and args.max_per_class < 1:
        raise DataError("--max-per-class must be at least 1")
    if is_idx_folder(args.input):
        if args.repr != "session784" or args.taxonomy:
            raise DataError(f"{args.input}: an idx folder holds session784 vectors: use --repr session784 "
                            "and no --taxonomy")
        if args.ray:
            raise DataError(f"{args.input}: an idx folder is read whole: --ray is for capture folders")
        res = build_from_idx(args.input, args.out, args.max_per_class, args.seed,
                             _fractions(args.split)[1] or 0.1, argv)
    elif args.by == "device":
        from classifier.build_devices import build_from_devices
        if not Path(args.input).is_dir():
            raise DataError(f"{args.input}: input directory does not exist")
        if not args.preprocess:
            args.keep = sorted(set(args.keep) | {"chatter", "no-payload"})
            args.max_packets = 0
        res = build_from_devices(args.input, args.out, preprocess_from_args(args), args.windows,
                                 args.taxonomy, args.kinds, args.seed, _fractions(args.split),
                                 progress=not args.no_progress, argv=argv, strict=args.strict)
    else:
        if not Path(args.input).is_dir():
            raise DataError(f"{args.input}: input directory does not exist")
        pre = preprocess_from_args(args)
        res = build_from_captures(args.input, args.out, pre, args.taxonomy, args.max_per_class,
                                  args.jobs, args.seed, _fractions(args.split), args.skip_bad,
                                  args.min_files, progress=not args.no_progress, argv=argv,
                                  strict=args.strict, ray=args.ray)
    m = res.manifest
    for note in m.get("notes", []):
        print(f"note: {note}")
    for warning in m.get("warnings", []):
        print(f"warning: {warning}")
    if res.skipped:
        print(f"skipped {len(res.skipped)} bad file(s):")
        for s in res.skipped:
            print(f"  {s}")
    if m.get("capped_classes"):
        print("capped (--max-per-class): " + ", ".join(f"{k} ({v})" for k, v in m["capped_classes"].items()))
    print(f"wrote {res.out}: {sum(c['train'] + c['val'] + c['test'] for c in res.counts.values())} samples, "
          f"{len(res.labels)} classes" + (f", {m['packets_read']} packets read in {m['seconds']} s"
                                          if "packets_read" in m else ""))
    print(format_counts(res.counts))
    return 0


def cmd_audit(args) -> int:
    from classifier.audit import audit_dataset, format_audit
    from classifier.dataset import load_dataset
    rep = audit_dataset(load_dataset(args.dataset), probe=not args.no_probe, seed=args.seed,
                        importance=args.importance or bool(args.model), model=args.model,
                        split=args.split, repeats=args.repeats)
    print(json.dumps(rep, indent=2) if args.json else format_audit(rep))
    return 0
