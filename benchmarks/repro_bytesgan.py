"""Reproduce ByteSGAN's Tables IV and V and its Figure 7 (arXiv 2103.05250) on iscx-apps.

    .venv/bin/python benchmarks/repro_bytesgan.py --quick     # minutes on 2 cores
    .venv/bin/python benchmarks/repro_bytesgan.py --full      # see docs/reproduction.md

Data: ``<data>/iscx-apps`` folders merged into the paper's applications (AIM,
Email, Facebook, Gmail, Hangout, ICQ, Netflix, SCP, SFTP, Skype, Spotify, Vimeo,
voipbuster, Youtube; torTwitter is not in our data), keeping applications with at
least ``--min-sessions`` usable sessions. Samples are 1480-byte packet vectors
(``packet1480``), the first 10 usable packets of each session.

Two protocols, the same packets:

- *paper*: unmasked headers, packets split at random (a session's packets on
  both sides), scored per packet;
- *honest*: masked headers (addresses, IP ID, TTL, checksums, seq/ack, flow
  label; UDP padded), session-disjoint split with identical vectors kept on one
  side (``classifier.splits``), scored per packet and per session.

Service chatter (DNS, LLMNR, NetBIOS, ...) and payload-less packets are filtered in
both (the paper drops ARP/DHCP/ICMP; without the chatter filter several
applications are mostly LLMNR).

Table IV: fixed labelled packets per class, growing unlabelled packets per class
(ByteSGAN). Table V: ByteSGAN (rest of train unlabelled) vs the paper's CNN
(Figure 6, ``classifier.nn.cnn``) with few labelled packets per class. Figure 7:
the discriminator's and generator's adversarial losses per epoch.
Writes ``results.json`` and PNGs to ``--out``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import repro_common as rc  # noqa: E402

NAME = "bytesgan"

#: iscx-apps folder -> the paper's application (its Table I; no torTwitter here).
APPS = {
    "aim_chat": "aim", "email": "email", "facebook_audio": "facebook", "facebook_chat": "facebook",
    "facebook_video": "facebook", "gmail": "gmail", "hangout_audio": "hangout",
    "hangout_chat": "hangout", "hangout_video": "hangout", "icq_chat": "icq", "netflix": "netflix",
    "scp_down": "scp", "sftp_down": "sftp", "skype_audio": "skype", "skype_chat": "skype",
    "skype_file": "skype", "skype_video": "skype", "spotify": "spotify", "vimeo": "vimeo",
    "voipbuster": "voipbuster", "youtube": "youtube", "youtube_html5": "youtube",
}

#: gan_steps = D+G steps per epoch (None: one pass over the real rows); the quick size sees each
#: real packet about 3.5 times in total (2 cores: ~0.6 s per step at batch 64).
SIZES = {
    "quick": {"max_per_class": 60, "gan_epochs": 5, "gan_steps": 20, "gan_batch": 64, "cnn_epochs": 15,
              "table5_labels": [5, 20, 80], "table4_labelled": 20, "table4_unlabelled": [0, 50, None]},
    "full": {"max_per_class": None, "gan_epochs": 50, "gan_steps": None, "gan_batch": 256,
             "cnn_epochs": 40, "table5_labels": [10, 30, 100, 300, 1000], "table4_labelled": 30,
             "table4_unlabelled": [0, 100, 300, 1000, None]},
}

PAPER_T4 = [{"labelled": 1000, "unlabelled_per_class": 4000, "accuracy": 0.9821},
            {"labelled": 1000, "unlabelled_per_class": 6000, "accuracy": 0.9896},
            {"labelled": 1000, "unlabelled_per_class": 8000, "accuracy": 0.9918}]
PAPER_T5 = [{"labelled_per_class": 1000, "bytesgan": 0.9215, "cnn": 0.8825},
            {"labelled_per_class": 2000, "bytesgan": 0.9292, "cnn": 0.8960},
            {"labelled_per_class": 3000, "bytesgan": 0.9310, "cnn": 0.9240},
            {"labelled_per_class": 4000, "bytesgan": 0.9318, "cnn": 0.9330}]
PAPER_SETTINGS = {"table4": "7 applications with >10,000 packets, 10,000 each; 1000 labelled "
                             "(per the text, in total); 4000/6000/8000 unlabelled per class",
                  "table5": "15 applications (Table I, 206,688 packets); 1000-4000 labelled per "
                            "application, the rest unlabelled",
                  "figure7": "losses stabilise around epoch 2000",
                  "optimizer": "Adam 2e-4, batch 256 (GAN); RMSprop, batch 128 (CNN)"}


def app_mapping(apps_dir: Path) -> dict[str, str]:
    dirs = rc.capture_dirs(apps_dir)
    m = {d: APPS[d] for d in dirs if d in APPS}
    return m or {d: d for d in dirs}  # other data (tests): one class per folder


def preprocess(protocol: str):
    from classifier.masking import MaskOptions
    from classifier.preprocess import Preprocess
    if protocol == "paper":
        mask = MaskOptions(zero_addresses=False, zero_ip_id=False, zero_ttl=False,
                           zero_checksums=False, zero_seq_ack=False, zero_flow_label=False,
                           zero_tcp_option_counters=False, pad_udp=False)
        return Preprocess(repr="packet1480", mask=mask)
    return Preprocess(repr="packet1480")


def pick(y, per_class, seed, exclude=None):
    """Indices (into y) of at most ``per_class`` rows per class (None = all), seeded."""
    from classifier.train import select_labelled
    idx = np.arange(len(y))
    if exclude is not None:
        idx = np.setdiff1d(idx, exclude)
    if per_class == 0:
        return np.zeros(0, int)
    return idx[select_labelled(y[idx], per_class, seed)]


def run_gan(ds, lab, unlab, epochs, seed, batch, steps=None):
    from classifier.nn import bytesgan, loop
    from classifier.nn.common import set_seed
    set_seed(seed)
    tr = np.flatnonzero(ds.split == 0)
    va = np.flatnonzero(ds.split == 1)
    te = np.flatnonzero(ds.split == 2)
    K = len(ds.labels)
    gan = bytesgan.ByteSGAN(ds.X.shape[1:], K, learning_rate=bytesgan.DEFAULTS["learning_rate"], seed=seed)
    hist = gan.fit(ds.X[tr[lab]], ds.y[tr[lab]], ds.X[tr[unlab]] if len(unlab) else None,
                   epochs=epochs, batch_size=batch, X_val=ds.X[va], y_val=ds.y[va], seed=seed,
                   progress=False, steps_per_epoch=steps, log=lambda *a: None)
    p = loop.predict(gan.classifier, ds.X[te])
    return rc.score(p, ds.y[te], ds.session[te], ds.labels), hist


def run_cnn(ds, lab, epochs, seed):
    from classifier.nn import cnn, loop
    from classifier.nn.common import set_seed
    set_seed(seed)
    tr = np.flatnonzero(ds.split == 0)
    va = np.flatnonzero(ds.split == 1)
    te = np.flatnonzero(ds.split == 2)
    K = len(ds.labels)
    m = cnn.build(ds.X.shape[1:], K, learning_rate=cnn.DEFAULTS["learning_rate"])
    hist = rc.fit(m, ds.X[tr[lab]], ds.y[tr[lab]], ds.X[va], ds.y[va], epochs,
                  cnn.DEFAULTS["batch_size"], K)
    p = loop.predict(m, ds.X[te])
    return rc.score(p, ds.y[te], ds.session[te], ds.labels), hist


def main(argv=None):
    ap = rc.parser(NAME, __doc__)
    ap.add_argument("--min-sessions", type=int, default=100,
                    help="keep applications with at least this many usable sessions")
    ap.add_argument("--labels", help="Table V labelled packets per class, comma separated")
    ap.add_argument("--unlabelled", help="Table IV unlabelled packets per class (all = every one)")
    ap.add_argument("--table4-labelled", type=int)
    ap.add_argument("--protocols", default="paper,honest")
    ap.add_argument("--batch", type=int, help="GAN batch (the paper's 256; quick 64)")
    ap.add_argument("--steps", type=int, help="GAN steps per epoch (default: the size's)")
    args = ap.parse_args(argv)
    S = dict(SIZES[args.size])
    if args.epochs:
        S["gan_epochs"] = S["cnn_epochs"] = args.epochs
    if args.max_per_class:
        S["max_per_class"] = args.max_per_class
    if args.labels:
        S["table5_labels"] = [int(x) for x in args.labels.split(",")]
    if args.unlabelled:
        S["table4_unlabelled"] = [None if x == "all" else int(x) for x in args.unlabelled.split(",")]
    if args.table4_labelled:
        S["table4_labelled"] = args.table4_labelled
    if args.batch:
        S["gan_batch"] = args.batch
    if args.steps:
        S["gan_steps"] = args.steps
    out = rc.out_dir(args, NAME)
    clock = rc.Clock()
    hw = rc.hardware()
    apps = Path(args.data) / "iscx-apps"
    mapping = app_mapping(apps)
    protocols = args.protocols.split(",")
    res: dict = {"paper": {"table4": PAPER_T4, "table5": PAPER_T5, "settings": PAPER_SETTINGS},
                 "sizes": S, "data": {}, "table4": {}, "table5": {}, "losses": {}}
    datasets = {}
    for prot in protocols:
        with clock.stage(f"build_{prot}"):
            ds = rc.build(apps, out / f"apps-packet1480-{prot}.npz", preprocess(prot), mapping,
                          S["max_per_class"], args.seed, args.jobs)
        avail = rc.available_sessions(ds)
        sess = rc.class_sessions(ds)
        keep = [c for c in ds.labels if avail[c] >= args.min_sessions]
        dropped = {c: n for c, n in avail.items() if c not in keep}
        ds = rc.subset_classes(ds, keep)
        split_info = None
        if prot == "paper":
            ds, split_info = rc.paper_resplit(ds, args.seed)
        with clock.stage(f"audit_{prot}"):
            aud = rc.audit(ds)
        res["data"][prot] = {"classes": keep, "dropped_classes_sessions": dropped,
                             "sessions_per_class": {c: sess[c] for c in keep},
                             "sessions_available_per_class": {c: avail[c] for c in keep},
                             "packets_per_class": {c: int((ds.y == i).sum()) for i, c in enumerate(keep)},
                             "split": rc.split_counts(ds), "audit": aud,
                             "split_kind": "random per packet" if prot == "paper" else
                             "session-disjoint, duplicates on one side",
                             "preprocess": ds.preprocess.to_dict()}
        rc.log(f"{prot}: {len(keep)} classes, {len(ds.y)} packets; probe {aud['probe']}")
        datasets[prot] = ds
    # ---- Table V: ByteSGAN vs CNN, few labels per class
    for prot, ds in datasets.items():
        ytr = ds.y[ds.split == 0]
        rows = []
        for L in S["table5_labels"]:
            lab = pick(ytr, L, args.seed)
            unlab = np.setdiff1d(np.arange(len(ytr)), lab)
            with clock.stage(f"table5_{prot}_bytesgan"):
                g, hist = run_gan(ds, lab, unlab, S["gan_epochs"], args.seed, S["gan_batch"], S["gan_steps"])
            with clock.stage(f"table5_{prot}_cnn"):
                c, chist = run_cnn(ds, lab, S["cnn_epochs"], args.seed)
            row = {"labelled_per_class": L, "labelled_rows": int(len(lab)), "unlabelled_rows": int(len(unlab)),
                   "bytesgan": g, "cnn": c, "cnn_epochs_run": len(chist.get("loss", []))}
            rows.append(row)
            res["losses"][f"{prot}_L{L}"] = hist
            rc.log(f"table V {prot} L={L}: ByteSGAN acc {g['per_row']['accuracy']:.4f} "
                   f"CNN acc {c['per_row']['accuracy']:.4f} (per packet, {g['per_row']['n']} test)")
        res["table5"][prot] = rows
    # ---- Table IV: fixed labelled, growing unlabelled (ByteSGAN)
    for prot, ds in datasets.items():
        ytr = ds.y[ds.split == 0]
        lab = pick(ytr, S["table4_labelled"], args.seed)
        rows = []
        t5 = {r["labelled_per_class"]: r for r in res["table5"][prot]}
        for U in S["table4_unlabelled"]:
            unlab = pick(ytr, U, args.seed + 1, exclude=lab)
            if U is None and S["table4_labelled"] in t5:  # the same run as Table V's row
                g = t5[S["table4_labelled"]]["bytesgan"]
            else:
                with clock.stage(f"table4_{prot}"):
                    g, hist = run_gan(ds, lab, unlab, S["gan_epochs"], args.seed, S["gan_batch"],
                                      S["gan_steps"])
            rows.append({"labelled_per_class": S["table4_labelled"], "labelled_rows": int(len(lab)),
                         "unlabelled_per_class": "all" if U is None else U,
                         "unlabelled_rows": int(len(unlab)), "bytesgan": g})
            rc.log(f"table IV {prot} U={U}: acc {g['per_row']['accuracy']:.4f} ({len(unlab)} unlabelled)")
        res["table4"][prot] = rows
    plots = make_plots(out, res)
    return rc.finish(out, NAME, args, clock, hw, res, plots)


def make_plots(out: Path, res: dict) -> list[str]:
    plt = rc.plt()
    names = []
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for prot, ls in (("paper", "--"), ("honest", "-")):
        rows = res["table5"].get(prot)
        if not rows:
            continue
        L = [r["labelled_per_class"] for r in rows]
        for model, color in (("bytesgan", "C0"), ("cnn", "C1")):
            ax.plot(L, [r[model]["per_row"]["accuracy"] for r in rows], ls, color=color, marker="o",
                    label=f"{'ByteSGAN' if model == 'bytesgan' else 'CNN'} ({prot} protocol)")
    P = res["paper"]["table5"]
    ax.plot([r["labelled_per_class"] for r in P], [r["bytesgan"] for r in P], ":", color="C0",
            marker="x", label="ByteSGAN (paper, 15 apps)")
    ax.plot([r["labelled_per_class"] for r in P], [r["cnn"] for r in P], ":", color="C1",
            marker="x", label="CNN (paper, 15 apps)")
    ax.set_xscale("log")
    ax.set_xlabel("labelled packets per class")
    ax.set_ylabel("test accuracy (per packet)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("ByteSGAN Table V: accuracy vs labelled samples per class")
    names.append(rc.save_plot(fig, out, "bytesgan_table5_accuracy.png"))

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for prot, ls in (("paper", "--"), ("honest", "-")):
        rows = res["table4"].get(prot)
        if rows:
            ax.plot([r["unlabelled_rows"] for r in rows], [r["bytesgan"]["per_row"]["accuracy"] for r in rows],
                    ls, marker="o", label=f"ByteSGAN, {rows[0]['labelled_per_class']} labelled/class ({prot})")
    ax.set_xlabel("unlabelled packets (total)")
    ax.set_ylabel("test accuracy (per packet)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("ByteSGAN Table IV: fixed labels, growing unlabelled set")
    names.append(rc.save_plot(fig, out, "bytesgan_table4_unlabelled.png"))

    keys = list(res["losses"])
    if keys:
        fig, axes = plt.subplots(1, min(2, len(keys)), figsize=(9, 3.4), squeeze=False)
        chosen = [k for k in keys if k.startswith("honest")][:1] + [k for k in keys if k.startswith("paper")][:1]
        for ax, k in zip(axes[0], chosen or keys[:2]):
            h = res["losses"][k]
            e = np.arange(1, len(h["d_adv_loss"]) + 1)
            ax.plot(e, h["d_adv_loss"], label="D adversarial: -log D(x) - log(1-D(G(z)))")
            ax.plot(e, h["g_adv_loss"], label="G adversarial: -log D(G(z))")
            ax.plot(e, h["d_sup_loss"], ":", label="D supervised CE")
            ax.set_xlabel("epoch")
            ax.set_title(f"ByteSGAN losses ({k})", fontsize=9)
            ax.legend(fontsize=6)
        names.append(rc.save_plot(fig, out, "bytesgan_fig7_losses.png"))
    return names


if __name__ == "__main__":
    main()
