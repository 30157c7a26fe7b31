"""``workbench filtergan train | eval | traverse``: the filter-GAN (ICLR 2018 submission), headless."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.cli.common import add_device_option, add_output_options, drive, output
from workbench.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    fg = sub.add_parser("filtergan", help="parametrise a conv layer's filters with an InfoGAN; evaluate it; traverse its latent space",
                        description="The filter-GAN: train (Algorithm 1), eval (sect. 5.2), traverse (sect. 4).")
    cmds = fg.add_subparsers(dest="filtergan_command", metavar="ACTION", parser_class=type(fg))
    cmds.required = True

    t = cmds.add_parser("train", help="train G, D and Q for one conv layer of a frozen CNN (Algorithm 1)")
    t.add_argument("--model", required=True, help="zoo name (e.g. digits-vgg) or a model file")
    t.add_argument("--layer", required=True, help="the conv layer whose filters G generates (e.g. conv4)")
    t.add_argument("--steps", type=int, default=None, help="training iterations (default 2000)")
    t.add_argument("--latent-dim", type=int, default=None, dest="latent_dim", help="size of z (default 16)")
    t.add_argument("--batch-size", type=int, default=None, dest="batch_size", help="m of Algorithm 1 (default 16)")
    t.add_argument("--lr", type=float, default=None, help="RMSprop learning rate (default 2e-4)")
    t.add_argument("--lambda-info", type=float, default=None, dest="lambda_info", help="λ of the mutual-information term (default 5)")
    t.add_argument("--generator", choices=("shared", "channel"), default=None,
                   help="G's parametrisation: one transformation of layer ℓ−1's maps shared by all filters, or each filter on its own (default shared)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--checkpoint-every", type=int, default=None, dest="checkpoint_every", help="steps between checkpoints (default 500)")
    t.add_argument("--train-images", type=int, default=None, dest="train_images", help="use only the first N training digits (default: all)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint up to --steps")
    add_device_option(t)
    add_output_options(t, "run folder to write (with --resume: the run to continue)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    e = cmds.add_parser("eval", help="accuracy with the generated filters and the MDS of real and generated filters (sect. 5.2)")
    e.add_argument("run_dir", metavar="RUN_DIR", help="a folder made by `workbench filtergan train`")
    e.add_argument("--filter-sets", type=int, default=10, dest="filter_sets", help="generated filter sets averaged (default 10)")
    e.add_argument("--retrain-epochs", type=int, default=3, dest="retrain_epochs", help="epochs re-training the following layers (default 3)")
    e.add_argument("--mds-samples", type=int, default=20, dest="mds_samples", help="generated filter sets in the MDS (default 20)")
    e.add_argument("--train-images", type=int, default=None, dest="train_images", help="re-train on the first N training digits only (default: all)")
    e.add_argument("--seed", type=int, default=0)
    add_device_option(e)
    e.add_argument("--out", default=None, help="write the evaluation into this new run folder (a copy of RUN_DIR) "
                                               "instead of into RUN_DIR (a read-only run, such as the shipped one, "
                                               "is copied to a new folder in the workspace without it)")
    e.add_argument("--workspace", default=None, metavar="DIR",
                   help="where the copy of a read-only run goes without --out (default: as for every run)")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_eval)

    v = cmds.add_parser("traverse", help="a k×k grid of images moving two latent dimensions (sect. 4)")
    v.add_argument("run_dir", metavar="RUN_DIR", nargs="?", default=None,
                   help="a folder made by `workbench filtergan train` (default: the shipped digits-vgg conv4 run)")
    v.add_argument("--sample", default="digits:0", help="digits:N (N-th test digit) or an image file (default digits:0)")
    v.add_argument("--dims", type=int, nargs=2, metavar=("I", "J"), default=None, help="the two latent dimensions (default: drawn with the seed)")
    v.add_argument("--xi", type=float, default=12.0, help="ξ: the grid spans ±ξ along each dimension (default 12)")
    v.add_argument("--grid", type=int, default=5, help="k: odd grid size (default 5)")
    v.add_argument("--iters", type=int, default=200, help="gradient-descent iterations per cell (default 200)")
    v.add_argument("-C", "--C", type=float, default=3000.0, dest="C", help="data-term weight (default 3000)")
    v.add_argument("--resolution", type=int, default=8, help="optimise a δ at R×R, upsampled (default 8, the digits' own resolution; 0: per pixel)")
    v.add_argument("--seed", type=int, default=0, help="draws z (and the dims when not given)")
    add_device_option(v)
    add_output_options(v)
    v.add_argument("--quiet", action="store_true")
    v.set_defaults(func=_traverse)



def _train(args: argparse.Namespace) -> int:
    from workbench.config import from_dict
    from workbench.device import resolve_device
    from workbench.filtergan import FilterGanConfig, train_filter_gan
    from workbench.filtergan.train import saved_config
    from workbench.models import load_model

    options = {k: getattr(args, k) for k in ("steps", "latent_dim", "batch_size", "lr", "lambda_info", "generator", "checkpoint_every", "train_images")
               if getattr(args, k) is not None}
    if args.resume:
        from workbench.runs import RunStore

        if args.out is None:
            raise UserError("--resume continues the run in --out: pass --out RUN_DIR")
        out, store = Path(args.out), None
        if not out.is_dir():
            raise UserError(f"nothing to resume in {out}: it is not a run folder; train without --resume")
        info = RunStore(out.parent).open(out).info
        saved = info.get("config") if isinstance(info, dict) else None
        if not isinstance(saved, dict) or info.get("kind") != "filtergan":
            raise UserError(f"{out}/run.json does not describe a filter-GAN run: resume a folder made by "
                            f"`workbench filtergan train`")
        config = from_dict(FilterGanConfig, {**saved_config(saved), **options, "device": args.device})
        if config.model != args.model or config.layer != args.layer or config.seed != args.seed:
            raise UserError(f"{out} was trained for {saved['model']}:{saved['layer']} with seed {saved['seed']}: resume with the same --model, --layer and --seed")
    else:
        out, store = output(args)
        config = FilterGanConfig(model=args.model, layer=args.layer, seed=args.seed, device=args.device, **options)
    config.validate()
    model = load_model(args.model, device=resolve_device(args.device))
    run = drive(train_filter_gan(config, out=out, runs=store, model=model, resume=args.resume), f"filtergan {args.layer}", quiet=args.quiet)
    m = run.metrics()
    print(json.dumps({"run": str(run.path), "steps": m.get("steps"), "final": m.get("final"), "z_dependence": m.get("z_dependence")}))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from workbench.filtergan import FilterGanEvalConfig, evaluate_filter_gan

    config = FilterGanEvalConfig(filter_sets=args.filter_sets, retrain_epochs=args.retrain_epochs,
                                 mds_samples=args.mds_samples, seed=args.seed, device=args.device,
                                 train_images=args.train_images)
    from workbench.runs import RunStore

    metrics = drive(evaluate_filter_gan(args.run_dir, config, out=args.out, runs=RunStore(args.workspace)),
                    "filtergan eval", quiet=args.quiet)
    keys = ("accuracy_real", "accuracy_generated", "accuracy_real_retrained", "spread_relative", "mds_spread_mean",
            "nearest_real_fraction", "matching_identity_fraction")
    print(json.dumps({"run": metrics["run"], **{k: metrics[k] for k in keys}, "mds_plot": "images/mds.png"}))
    return 0


def _traverse(args: argparse.Namespace) -> int:
    from workbench.filtergan import TraversalConfig, traverse

    out, store = output(args)
    if args.run_dir is None:
        from workbench.resources import shipped_filtergan_run

        args.run_dir = str(shipped_filtergan_run())
    config = TraversalConfig(run=args.run_dir, sample=args.sample, dims=tuple(args.dims) if args.dims else None,
                             xi=args.xi, grid=args.grid, iters=args.iters, C=args.C, seed=args.seed, device=args.device,
                             resolution=args.resolution or None)
    config.validate()
    result = drive(traverse(config, out=out, runs=store), "filtergan traverse", quiet=args.quiet)
    keys = ("dims", "centre_error", "preimage_error_mean", "neighbour_rms", "all_pairs_rms", "neighbour_ratio")
    print(json.dumps({"run": str(result.run.path), **{k: result.metrics[k] for k in keys}, "grid": "images/grid.png"}))
    return 0
