"""`egw train` and `egw evaluate` (TensorFlow is imported only inside `train`)."""
from __future__ import annotations

import shlex
import sys

from classifier.cli import add_ray_option
from classifier.train import MODELS as MODEL_CHOICES  # the module imports no TensorFlow at load


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a classifier on a dataset .npz and write a model bundle",
        description="Train one model family on a dataset built by `egw dataset build` and write a "
        "model bundle (model.keras, model.tflite, model.int8.tflite, labels.json, preprocess.json, "
        "card.json, PNG plots). Needs the `train` extra (TensorFlow).")
    p.add_argument("--model", required=True, choices=MODEL_CHOICES,
                   help="tinykp (kpackets; the tiny CNN with a byte embedding, the default "
                   "model), bytesgan (packet1480), cnn (packet1480/session784), tiny and nas "
                   "(session784), deepnfv and cart (image900; cart takes any), kpnet and knn "
                   "(kpackets), forest and boosted (any; trees run through LiteRT)")
    p.add_argument("--data", required=True, metavar="FILE.npz", help="dataset from `egw dataset build`")
    p.add_argument("--out", required=True, metavar="DIR", help="bundle directory to write")
    p.add_argument("--labeled-per-class", type=int, default=None, metavar="N",
                   help="keep N labelled training samples per class; ByteSGAN gets the rest as "
                   "unlabelled, the other models train on the N only")
    p.add_argument("--epochs", type=int, default=None, metavar="N", help="epochs (per candidate for nas)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N")
    p.add_argument("--patience", type=int, default=8, metavar="N",
                   help="early-stopping patience in epochs (default 8)")
    p.add_argument("--unknown-rate", type=float, default=0.02, metavar="F",
                   help="share of validation sessions below the open-set threshold (default 0.02)")
    p.add_argument("--generations", type=int, default=3, metavar="N", help="nas: generations (default 3)")
    p.add_argument("--population", type=int, default=3, metavar="N",
                   help="nas: children per generation (default 3)")
    p.add_argument("--max-params", type=int, default=50_000, metavar="N", help="nas: parameter limit")
    p.add_argument("--max-flops", type=int, default=5_000_000, metavar="N", help="nas: FLOPs limit")
    p.add_argument("--max-tensor", type=int, default=25_000, metavar="N",
                   help="nas: largest intermediate tensor (elements)")
    p.add_argument("--steps-per-epoch", type=int, default=None, metavar="N",
                   help="bytesgan: D/G step pairs per epoch (default: one pass over the real data)")
    p.add_argument("--trees", type=int, default=None, metavar="N",
                   help="forest: trees (default 30); boosted: boosting iterations, one tree "
                   "per class each (default 100)")
    p.add_argument("--max-leaves", type=int, default=None, metavar="N",
                   help="leaves per tree (forest default 256, boosted default 15)")
    p.add_argument("--max-seconds", type=float, default=None, metavar="S",
                   help="training budget in wall-clock seconds: stop after the epoch that "
                   "exceeds it (recorded in card.json)")
    p.add_argument("--teacher", default=None, metavar="DIR",
                   help="tinykp: distil from this bundle (e.g. a boosted model trained on the "
                   "same dataset), or 'oof-boosted': boosted trees trained here, 5 folds grouped "
                   "by session, each row's soft target from the fold that did not see it; the "
                   "teacher's probabilities become half of the training targets")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="nas: worker processes that train a generation's children in parallel")
    add_ray_option(p, "nas: train each generation's children")
    p.add_argument("--neighbours", type=int, default=None, metavar="K",
                   help="knn: neighbours (default 5)")
    p.add_argument("--no-test", action="store_true",
                   help="do not score the test split (a candidate of a selection made on "
                   "validation: read the chosen one's test figure once with `egw evaluate "
                   "--split test`); card.json says so")
    p.add_argument("--note", default=None, metavar="TEXT", help="free text stored in card.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)

    r = sub.add_parser(
        "recipe", help="the commands that made a bundle, pointed at your captures",
        description="Print (or run) the `egw dataset build` and `egw train` commands recorded in a "
        "bundle's card.json, with their paths pointed at another capture folder: the same "
        "representation, masking, split and family, trained on your data.")
    r.add_argument("bundle", nargs="?", default=None, metavar="DIR",
                   help="bundle directory (default: the embedded default model)")
    r.add_argument("--input", metavar="DIR", help="captures, one subdirectory per class")
    r.add_argument("--taxonomy", metavar="FILE", help="YAML mapping classes to capture directories")
    r.add_argument("--workdir", metavar="DIR", default="runs/recipe",
                   help="where the dataset (data.npz) and bundles (model/, teacher/) go")
    r.add_argument("--run", action="store_true", help="run the commands (else print them)")
    r.set_defaults(func=_recipe)

    e = sub.add_parser(
        "evaluate", help="score a model bundle through LiteRT on a dataset or a capture directory",
        description="Run a bundle through LiteRT exactly as the gateway does (same preprocessing "
        "code) and print accuracy, macro-F1 and per-class precision/recall/F1 per session, and how "
        "many in-distribution sessions fall below the open-set threshold ('unknown').")
    e.add_argument("--model", default=None, metavar="DIR",
                   help="bundle directory (default: the embedded default model)")
    e.add_argument("--data", required=True, metavar="PCAP_DIR_OR_NPZ",
                   help="dataset .npz (its test split) or a directory with one subdirectory of "
                   "captures per class")
    e.add_argument("--taxonomy", default=None, metavar="FILE",
                   help="YAML mapping classes to capture directories (capture directory input)")
    e.add_argument("--split", default="test", choices=("test", "val", "train", "all"),
                   help=".npz rows to score (default test; all rows when the file has no test split)")
    e.add_argument("--float", dest="float_model", action="store_true",
                   help="run model.tflite instead of model.int8.tflite")
    e.add_argument("--json", default=None, metavar="OUT", help="write the results as JSON")
    e.add_argument("--confusion", default=None, metavar="PNG",
                   help="draw the confusion matrix (per capture for a device bundle, else per session)")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=_evaluate)
    register_ood(sub)


def _train(args) -> int:
    from classifier.train import summary, train

    card = train(args.model, args.data, args.out, labeled_per_class=args.labeled_per_class,
                 epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
                 progress=not args.no_progress and sys.stderr.isatty(),
                 unknown_rate=args.unknown_rate, generations=args.generations,
                 population=args.population, max_params=args.max_params,
                 max_flops=args.max_flops, max_tensor=args.max_tensor,
                 steps_per_epoch=args.steps_per_epoch, patience=args.patience,
                 trees=args.trees, max_leaves=args.max_leaves, note=args.note,
                 max_seconds=args.max_seconds, teacher=args.teacher, workers=args.workers,
                 neighbours=args.neighbours, ray=args.ray, score_test=not args.no_test,
                 command="egw " + " ".join(shlex.quote(a) for a in args.argv))
    print(summary(card))
    print(f"wrote {args.out}")
    return 0


def _recipe(args) -> int:
    import json
    from pathlib import Path

    from classifier.bundle import CARD_FILE, DEFAULT_BUNDLE_DIR
    from classifier.recipe import RecipeError, format_commands, recipe, retarget

    card_path = Path(args.bundle or DEFAULT_BUNDLE_DIR) / CARD_FILE
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise RecipeError(f"{card_path}: cannot read: {exc}") from None
    cmds = recipe(card, str(card_path))
    if args.input:
        cmds = retarget(cmds, args.input, args.workdir, args.taxonomy)
    print(format_commands(cmds))
    if args.run:
        if not args.input:
            raise RecipeError("--run needs --input (your captures)")
        from egw_cli.main import main as egw
        for argv in cmds:
            print(f"\n$ egw {' '.join(argv)}", flush=True)
            rc = egw(argv)
            if rc:
                return rc
    return 0


def _evaluate(args) -> int:
    from classifier.evaluate import evaluate, format_result, write_json

    res = evaluate(args.model, args.data, taxonomy=args.taxonomy, prefer_int8=not args.float_model,
                   progress=not args.no_progress and sys.stderr.isatty(), split=args.split)
    print(format_result(res))
    if args.confusion:
        from classifier.evaluate import confusion_report
        from classifier.plots import confusion_png
        rep = confusion_report(res)
        if rep is None:
            print("no in-distribution samples: no confusion matrix drawn")
        else:
            confusion_png(rep["confusion"], list(rep["per_class"]), args.confusion,
                          "Confusion matrix (" + ("captures" if "per_capture" in res else "sessions") + ")")
            print(f"wrote {args.confusion}")
    if args.json:
        write_json(res, args.json)
        print(f"wrote {args.json}")
    return 0


def register_ood(sub) -> None:
    o = sub.add_parser("ood", help="fit a bundle's out-of-distribution (open-set) part",
                       description="Out-of-distribution detection of a model bundle.")
    osub = o.add_subparsers(dest="ood_command", metavar="COMMAND", required=True)
    f = osub.add_parser(
        "fit", help="fit the OOD score and threshold of a bundle on its training dataset",
        description="Fit the OOD part of a bundle (any family): aggregates of the training "
        "sessions' features (k-means centroids of at least 5 sessions, class means and a shared "
        "covariance; in the penultimate-layer embedding, exported as embed.tflite, or the input "
        "vector for bundles without model.keras), the threshold that rejects --reject-rate of "
        "the validation sessions, and with --tune the parts that catch most of the tuning "
        "sessions. Writes ood.npz, embed.tflite and card.json['ood']. Needs the "
        "`train` extra (TensorFlow) for Keras bundles.")
    f.add_argument("--model", required=True, metavar="DIR", help="bundle directory")
    f.add_argument("--data", required=True, metavar="FILE.npz",
                   help="the bundle's training dataset (train rows: the aggregates; val: the threshold)")
    f.add_argument("--tune", action="append", default=[], metavar="FILE.npz",
                   help="tuning part of an unfamiliar source, built with the bundle's "
                   "preprocess.json (repeatable); never its test part")
    f.add_argument("--reject-rate", type=float, default=0.05, metavar="F",
                   help="share of validation sessions above the threshold (default 0.05)")
    f.add_argument("--seed", type=int, default=0, metavar="N")
    f.set_defaults(func=_ood_fit)


def _ood_fit(args) -> int:
    from classifier.ood_fit import fit

    fit(args.model, args.data, tune=args.tune, reject_rate=args.reject_rate, seed=args.seed,
        argv=args.argv)
    return 0
