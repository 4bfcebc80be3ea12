"""Reproduce Table I of DeepNFV (IEEE Network 2018) in spirit: per-class precision and
recall of its six-layer CNN on 30x30 packet images against CART (a decision tree).

    .venv/bin/python benchmarks/repro_deepnfv.py --quick     # minutes on 2 cores
    .venv/bin/python benchmarks/repro_deepnfv.py --full      # see docs/reproduction.md

The paper's classes (Samba, Twitter, Google Play, Youtube, Gmail, FTP, HTTP,
Instagram) come from its own captures; ours are the ``<data>/iscx-apps``
applications that overlap (youtube, gmail, ftps) plus the other ISCX
applications with at least ``--min-sessions`` usable sessions. Samples are
``image900`` (each usable packet's first 900 bytes as a 30x30 image,
``classifier.representations.deepnfv_image``), the first 10 usable packets per
session. Models: ``classifier.nn.deepnfv`` (SGD) and ``classifier.nn.cart``
(``fit_tree``, scikit-learn CART, balanced classes).

Protocols: *paper* = unmasked headers, packets split at random, scored per
packet; *honest* = masked headers, session-disjoint split (identical vectors on
one side), scored per packet and per session. Chatter is filtered in both.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import repro_common as rc  # noqa: E402

NAME = "deepnfv"

APPS = {
    "youtube": "youtube", "youtube_html5": "youtube", "gmail": "gmail", "ftps_down": "ftps",
    "ftps_up": "ftps", "email": "email", "facebook_audio": "facebook", "facebook_chat": "facebook",
    "facebook_video": "facebook", "hangout_audio": "hangout", "hangout_chat": "hangout",
    "hangout_video": "hangout", "scp_down": "scp", "skype_audio": "skype", "skype_chat": "skype",
    "skype_file": "skype", "skype_video": "skype", "vimeo": "vimeo", "voipbuster": "voipbuster",
    "netflix": "netflix", "spotify": "spotify",
}

SIZES = {"quick": {"max_per_class": 80, "epochs": 20},
         "full": {"max_per_class": None, "epochs": 30}}

PAPER_T1 = {"Samba": (1.00, 1.00, 1.00, 1.00), "Twitter": (0.92, 0.96, 1.00, 0.80),
            "Google Play": (0.84, 0.99, 0.49, 1.00), "Youtube": (1.00, 0.91, 0.94, 0.87),
            "Gmail": (0.97, 0.85, 0.61, 0.51), "FTP": (0.94, 1.00, 1.00, 0.73),
            "HTTP": (0.99, 1.00, 1.00, 1.00), "Instagram": (0.96, 0.88, 0.91, 0.62),
            "Average": (0.95, 0.95, 0.87, 0.82)}
PAPER_SETTINGS = ("their own captures of 8 protocols/applications (counts not given), packets "
                  "cleaned (MAC removed, transport header unified), sized to 900 bytes, 30x30 "
                  "images; CNN: 4 conv + 2 dense, SGD; baseline CART; split not described")


def app_mapping(apps_dir: Path) -> dict[str, str]:
    dirs = rc.capture_dirs(apps_dir)
    m = {d: APPS[d] for d in dirs if d in APPS}
    return m or {d: d for d in dirs}


def preprocess(protocol: str):
    from classifier.masking import MaskOptions
    from classifier.preprocess import Preprocess
    if protocol == "paper":
        return Preprocess(repr="image900", mask=MaskOptions(
            zero_addresses=False, zero_ip_id=False, zero_ttl=False, zero_checksums=False,
            zero_seq_ack=False, zero_flow_label=False, zero_tcp_option_counters=False, pad_udp=True))
    return Preprocess(repr="image900")


def run(ds, S, seed):
    from classifier.nn import cart, deepnfv, loop
    from classifier.nn.common import hardware_report, public_report, set_seed
    set_seed(seed)
    tr = np.flatnonzero(ds.split == 0)
    va = np.flatnonzero(ds.split == 1)
    te = np.flatnonzero(ds.split == 2)
    K = len(ds.labels)
    m = deepnfv.build(ds.X.shape[1:], K, learning_rate=deepnfv.DEFAULTS["learning_rate"])
    hist = rc.fit(m, ds.X[tr], ds.y[tr], ds.X[va], ds.y[va], S["epochs"], deepnfv.DEFAULTS["batch_size"], K)
    p_cnn = loop.predict(m, ds.X[te])
    tree = cart.fit_tree(ds.X[tr], ds.y[tr], K, seed=seed, max_depth=cart.DEFAULTS["max_depth"])
    pt = tree.predict_proba(ds.X[te].reshape(len(te), -1))
    p_cart = np.zeros((len(te), K), np.float32)
    p_cart[:, tree.classes_.astype(int)] = pt
    return {"deepnfv": rc.score(p_cnn, ds.y[te], ds.session[te], ds.labels),
            "cart": rc.score(p_cart, ds.y[te], ds.session[te], ds.labels),
            "deepnfv_epochs_run": len(hist.get("loss", [])),
            "deepnfv_hardware": public_report(hardware_report(m)),
            "cart_tree": {"nodes": int(tree.tree_.node_count), "depth": int(tree.tree_.max_depth)}}


def main(argv=None):
    ap = rc.parser(NAME, __doc__)
    ap.add_argument("--min-sessions", type=int, default=50)
    ap.add_argument("--protocols", default="paper,honest")
    args = ap.parse_args(argv)
    S = dict(SIZES[args.size])
    if args.epochs:
        S["epochs"] = args.epochs
    if args.max_per_class:
        S["max_per_class"] = args.max_per_class
    out = rc.out_dir(args, NAME)
    clock = rc.Clock()
    hw = rc.hardware()
    apps = Path(args.data) / "iscx-apps"
    res: dict = {"paper": {"table1": {k: dict(zip(("cnn_precision", "cnn_recall", "cart_precision",
                                                   "cart_recall"), v)) for k, v in PAPER_T1.items()},
                           "settings": PAPER_SETTINGS}, "sizes": S, "runs": {}}
    for prot in args.protocols.split(","):
        with clock.stage(f"build_{prot}"):
            ds = rc.build(apps, out / f"apps-image900-{prot}.npz", preprocess(prot), app_mapping(apps),
                          S["max_per_class"], args.seed, args.jobs)
        avail = rc.available_sessions(ds)
        sess = rc.class_sessions(ds)
        keep = [c for c in ds.labels if avail[c] >= args.min_sessions]
        ds = rc.subset_classes(ds, keep)
        if prot == "paper":
            ds, _ = rc.paper_resplit(ds, args.seed)
        with clock.stage(f"audit_{prot}"):
            aud = rc.audit(ds)
        with clock.stage(f"train_{prot}"):
            r = run(ds, S, args.seed)
        r.update({"classes": keep, "sessions_per_class": {c: sess[c] for c in keep},
                             "sessions_available_per_class": {c: avail[c] for c in keep},
                  "packets_per_class": {c: int((ds.y == i).sum()) for i, c in enumerate(keep)},
                  "split": rc.split_counts(ds), "audit": aud,
                  "dropped_classes_sessions": {c: n for c, n in avail.items() if c not in keep},
                  "split_kind": "random per packet" if prot == "paper" else
                  "session-disjoint, duplicates on one side", "preprocess": ds.preprocess.to_dict()})
        rc.log(f"{prot}: DeepNFV acc {r['deepnfv']['per_row']['accuracy']:.4f} "
               f"CART acc {r['cart']['per_row']['accuracy']:.4f}; probe {aud['probe']}")
        res["runs"][prot] = r
    plots = make_plots(out, res)
    return rc.finish(out, NAME, args, clock, hw, res, plots)


def make_plots(out: Path, res: dict) -> list[str]:
    plt = rc.plt()
    runs = res["runs"]
    fig, axes = plt.subplots(len(runs), 2, figsize=(11, 3.4 * len(runs)), squeeze=False)
    for row, (prot, r) in enumerate(runs.items()):
        labels = r["classes"]
        x = np.arange(len(labels))
        for col, metric in enumerate(("precision", "recall")):
            ax = axes[row][col]
            for k, (model, color) in enumerate((("deepnfv", "C0"), ("cart", "C1"))):
                pc = r[model]["per_row"]["per_class"]
                ax.bar(x + (k - 0.5) * 0.38, [pc[c][metric] for c in labels], 0.38, color=color,
                       label=f"{'DeepNFV CNN' if model == 'deepnfv' else 'CART'} "
                             f"(macro {r[model]['per_row']['macro_' + metric]:.2f})")
            ax.set_xticks(x, labels, rotation=40, ha="right", fontsize=7)
            ax.set_ylim(0, 1.3)
            ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
            ax.set_title(f"per-packet {metric}, {prot} protocol", fontsize=9)
            ax.legend(fontsize=7, loc="upper center", ncol=2)
    return [rc.save_plot(fig, out, "deepnfv_per_class.png")]


if __name__ == "__main__":
    main()
