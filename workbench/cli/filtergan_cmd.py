"""``workbench filtergan train | eval | traverse``: the filter-GAN (ICLR 2018 submission), headless."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.cli.common import (RUN_TRUST_HELP, add_device_option, add_figure_options, add_model_options,
                                  add_output_options, add_trust_option, drive, figure_style, open_model, output)
from workbench.config import add_options
from workbench.config.filtergan import FilterGanConfig, FilterGanEvalConfig, TraversalConfig
from workbench.config.filtergan_figure import FilterFigureConfig
from workbench.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    fg = sub.add_parser("filtergan", help="parametrise a conv layer's filters with an InfoGAN; evaluate it; traverse its latent space",
                        description="The filter-GAN: train (Algorithm 1), eval (sect. 5.2), traverse (sect. 4), figure (Fig. 2).")
    cmds = fg.add_subparsers(dest="filtergan_command", metavar="ACTION", parser_class=type(fg))
    cmds.required = True

    t = cmds.add_parser("train", help="train G, D and Q for one conv layer of a frozen CNN (Algorithm 1)")
    add_model_options(t)
    add_options(t, FilterGanConfig, given_only=True, skip=("device",))
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint up to --steps")
    add_device_option(t)
    add_output_options(t, "run folder to write (with --resume: the run to continue)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    e = cmds.add_parser("eval", help="accuracy with the generated filters and the MDS of real and generated filters (sect. 5.2)")
    e.add_argument("run_dir", metavar="RUN_DIR", help="a folder made by `workbench filtergan train`")
    add_options(e, FilterGanEvalConfig, skip=("device",))
    add_trust_option(e, RUN_TRUST_HELP)
    add_device_option(e)
    e.add_argument("--out", default=None, help="write the evaluation into this new run folder (a copy of RUN_DIR) "
                                               "instead of into RUN_DIR (a read-only run, such as the shipped one, "
                                               "is copied to a new folder in the workspace without it)")
    e.add_argument("--workspace", default=None, metavar="DIR",
                   help="where the copy of a read-only run goes without --out (default: as for every run)")
    add_figure_options(e)
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_eval)

    _on_a_run(cmds, "traverse", TraversalConfig, _traverse,
              help="a k×k grid of images moving two latent dimensions (sect. 4)")

    _on_a_run(cmds, "figure", FilterFigureConfig, _figure,
              help="the paper's Fig. 2: generated filters, one third of the input channels summed, under the "
                   "real filters",
              description="Fig. 2 of the filter-GAN paper: the filters G generates for random z, each "
                                    "drawn with its input channels summed in thirds (red, green, blue), under the "
                                    "real filters of the same output channels. Writes images/filters_fig2.png and "
                                    ".pdf and metrics.json (how far the generated filters lie from the real ones).")


def _on_a_run(cmds, name: str, config, func, **parser) -> None:
    """A subcommand that reads a trained run (default: the shipped one) and writes a new run folder."""
    p = cmds.add_parser(name, **parser)
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?", default=None,
                   help="a folder made by `workbench filtergan train` (default: the shipped digits-vgg conv4 run)")
    add_options(p, config, skip=("device",))
    add_trust_option(p, RUN_TRUST_HELP)
    add_device_option(p)
    add_output_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=func)


def _open_run(run_dir: str, device: str, args: argparse.Namespace):
    """The trained filter-GAN of ``run_dir``, opened by the command (its jobs receive it loaded) on
    ``device``, with the CNN its run.json names (opened only with ``--trust`` if that is code)."""
    from workbench.filtergan import load_filter_gan

    return load_filter_gan(run_dir, device=device, trust=args.trust)


def _train(args: argparse.Namespace) -> int:
    from workbench.config import from_args, from_dict
    from workbench.filtergan import train_filter_gan
    from workbench.filtergan.train import saved_config

    given = {k: v for k, v in vars(from_args(FilterGanConfig, args, model=args.model)).items()
             if hasattr(args, k) and k not in ("model", "layer", "seed", "device")}
    seed = getattr(args, "seed", FilterGanConfig.seed)
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
        config = from_dict(FilterGanConfig, {**saved_config(saved), **given, "device": args.device})
        if config.model != args.model or config.layer != args.layer or config.seed != seed:
            raise UserError(f"{out} was trained for {saved['model']}:{saved['layer']} with seed {saved['seed']}: resume with the same --model, --layer and --seed")
    else:
        out, store = output(args)
        config = FilterGanConfig(model=args.model, layer=args.layer, seed=seed, device=args.device, **given)
    config.validate()
    model = open_model(args)
    run = drive(train_filter_gan(config, out=out, runs=store, model=model, resume=args.resume, figure=figure_style(args)),
                f"filtergan {args.layer}", quiet=args.quiet)
    m = run.metrics()
    print(json.dumps({"run": str(run.path), "steps": m.get("steps"), "final": m.get("final"), "z_dependence": m.get("z_dependence")}))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from workbench.config import from_args
    from workbench.filtergan import evaluation_job
    from workbench.runs import RunStore

    config = from_args(FilterGanEvalConfig, args)
    config.validate()
    fgan = _open_run(args.run_dir, config.device, args)
    metrics = drive(evaluation_job(fgan, config, out=args.out, runs=RunStore(args.workspace), figure=figure_style(args)),
                    "filtergan eval", quiet=args.quiet)
    keys = ("accuracy_real", "accuracy_generated", "accuracy_real_retrained", "accuracy_generated_frozen",
            "accuracy_noise", "accuracy_noise_frozen", "accuracy_permuted", "accuracy_permuted_frozen", "margins",
            "spread_relative", "mds_spread_mean", "nearest_real_fraction", "matching_identity_fraction")
    print(json.dumps({"run": metrics["run"], **{k: metrics[k] for k in keys}, "mds_plot": "images/mds.png"}))
    return 0


def _traverse(args: argparse.Namespace) -> int:
    from workbench.config import from_args
    from workbench.filtergan import traversal_job

    out, store = output(args)
    if args.run_dir is None:
        from workbench.resources import shipped_filtergan_run

        args.run_dir = str(shipped_filtergan_run())
    config = from_args(TraversalConfig, args, run=args.run_dir, resolution=args.resolution or None)
    config.validate()
    fgan = _open_run(config.run, config.device, args)
    result = drive(traversal_job(fgan, config, out=out, runs=store, figure=figure_style(args)),
                   "filtergan traverse", quiet=args.quiet)
    keys = ("dims", "centre_error", "preimage_error_mean", "neighbour_rms", "all_pairs_rms", "neighbour_ratio")
    print(json.dumps({"run": str(result.run.path), **{k: result.metrics[k] for k in keys}, "grid": "images/grid.png"}))
    return 0


def _figure(args: argparse.Namespace) -> int:
    from workbench.config import from_args
    from workbench.filtergan.figure import FIGURE, filters_figure_job

    out, store = output(args)
    if args.run_dir is None:
        from workbench.resources import shipped_filtergan_run

        args.run_dir = str(shipped_filtergan_run())
    config = from_args(FilterFigureConfig, args, run=args.run_dir)
    config.validate()
    fgan = _open_run(config.run, config.device, args)
    metrics = drive(filters_figure_job(fgan, config, out=out, runs=store, figure=figure_style(args)),
                    "filtergan figure", quiet=args.quiet)
    keys = ("layer", "filter_distance_relative", "view_distance_relative")
    print(json.dumps({"run": metrics["run"], **{k: metrics[k] for k in keys}, "figure": f"images/{FIGURE}.png"}))
    return 0
