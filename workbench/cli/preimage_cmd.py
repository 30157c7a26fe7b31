"""``workbench invert | maximize | caricature | demo``: natural pre-images, headless."""

from __future__ import annotations

import argparse
import json

from workbench.cli.common import (add_device_option, add_model_options, add_output_options, drive, figure_style,
                                  open_model, output)


def register(sub: argparse._SubParsersAction) -> None:
    from workbench.config import add_options
    from workbench.config.preimage import PreimageConfig

    for method, help_text in (("invert", "reconstruct an image from a layer's code (IJCV eq. 2/3)"),
                              ("maximize", "an image that maximally activates a channel or neuron (eq. 4)"),
                              ("caricature", "exaggerate what a layer sees in an image (sect. 7)")):
        p = sub.add_parser(method, help=help_text, description=help_text)
        add_model_options(p)
        add_options(p, PreimageConfig, method=method)
        add_output_options(p)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=_run, method=method)

    d = sub.add_parser("demo", help="a short showcase on the bundled model, written as one labelled figure")
    add_model_options(d, default="digits-vgg")
    d.add_argument("--iters", type=int, default=200)
    add_device_option(d)
    add_output_options(d, "run folder for the figure and its pre-image runs")
    d.set_defaults(func=_demo)


def _config(args: argparse.Namespace):
    from workbench.config import from_args
    from workbench.config.preimage import PreimageConfig

    return from_args(PreimageConfig, args, model=args.model,
                     image=getattr(args, "image", None) if args.method != "maximize" else None)


def _run(args: argparse.Namespace) -> int:
    from workbench.preimage import preimage_job
    from workbench.preimage.quality import open_judge

    config = _config(args)
    config.validate()
    out, store = output(args)
    model = open_model(args)
    judge = open_judge(config, model)
    result = drive(preimage_job(config, out=out, runs=store, model=model, judge=judge, figure=figure_style(args)),
                   f"{args.method} {args.layer}",
                   quiet=args.quiet)
    summary = {k: result.metrics[k] for k in ("reconstruction_error_mean", "classification_consistency", "activation_over_M",
                                                "activation_over_reference") if k in result.metrics}
    print(json.dumps({"run": str(result.run.path), **summary}))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from workbench.preimage.demo import demo_job

    out, store = output(args)
    model = open_model(args)  # the same model option group and consent rule as every command
    path = drive(demo_job(args.model, out, iters=args.iters, device=args.device, runs=store,
                          figure=figure_style(args), model=model), "demo")
    print(path)
    return 0
