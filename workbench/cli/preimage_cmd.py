"""``workbench invert | maximize | caricature | demo``: natural pre-images, headless."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.cli.common import add_device_option, add_output_options, drive, output
from workbench.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    for method, help_text in (("invert", "reconstruct an image from a layer's code (IJCV eq. 2/3)"),
                              ("maximize", "an image that maximally activates a channel or neuron (eq. 4)"),
                              ("caricature", "exaggerate what a layer sees in an image (sect. 7)")):
        p = sub.add_parser(method, help=help_text, description=help_text)
        p.add_argument("--model", required=True, help="zoo name (see `workbench zoo list`) or a model file")
        p.add_argument("--arch", default=None, help="architecture name for a state_dict / safetensors file")
        p.add_argument("--trust", action="store_true", help="allow a full pickle or a TorchScript file (both run code from the file when loaded)")
        p.add_argument("--layer", required=True, help="layer name or alias (see `workbench layers --model M`)")
        if method != "maximize":
            src = p.add_mutually_exclusive_group()
            src.add_argument("--image", help="reference image file (PNG, JPEG, ...)")
            src.add_argument("--sample", help="bundled reference: digits:N (N-th test digit) or astronaut, coffee, chelsea, camera, ...")
        else:
            p.add_argument("--channel", type=int, required=True, help="channel to maximize")
            p.add_argument("--neuron", type=int, nargs=2, metavar=("Y", "X"), default=None,
                           help="maximize one neuron of the channel instead of the channel's mean")
        if method == "invert":
            p.add_argument("--window", type=int, default=None, help="invert only the central K×K positions of the layer (eq. 3, Fig. 13)")
            p.add_argument("--channels", type=int, nargs="+", default=None, help="invert only these channels (eq. 3, Fig. 14)")
        p.add_argument("--restarts", type=int, default=4, help="K random restarts, solved together (default 4)")
        p.add_argument("--iters", type=int, default=300, help="T iterations (default 300, sect. 3.4)")
        p.add_argument("--fine-tune", type=int, default=None, dest="fine_tune",
                       help="extra iterations without jitter at a tenth of the rate (default: 50 for invert, 0 otherwise)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("-C", "--C", type=float, default=None, dest="C", help="data-term weight C (default: the paper's per-layer preset)")
        p.add_argument("--alpha", type=float, default=6.0, help="α of the bounded-range prior (default 6)")
        p.add_argument("--beta", type=float, default=2.0, help="β of the TV prior (default 2)")
        p.add_argument("--B", type=float, default=None, help="typical pixel norm B (default: 80, or measured on the model's data)")
        p.add_argument("--jitter", type=int, default=None, help="jitter T in pixels (default: a quarter of the layer's stride)")
        p.add_argument("--frames", type=int, default=0, metavar="N", help="keep a frame every N iterations for an animation")
        p.add_argument("--schedule", choices=("auto", "batched", "sequential"), default="auto",
                       help="restarts as one batch or one at a time (auto: batched on GPUs, sequential on CPUs)")
        add_device_option(p)
        add_output_options(p)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=_run, method=method)

    d = sub.add_parser("demo", help="a short showcase on the bundled model, written as one labelled figure")
    d.add_argument("--model", default="digits-vgg")
    d.add_argument("--iters", type=int, default=200)
    add_device_option(d)
    add_output_options(d, "run folder for the figure and its pre-image runs")
    d.set_defaults(func=_demo)


def _config(args: argparse.Namespace):
    from workbench.preimage import PreimageConfig

    image = None
    if args.method != "maximize":
        image = args.image or args.sample
        if args.image and not Path(args.image).is_file():
            raise UserError(f"image file not found: {args.image}")
    return PreimageConfig(
        model=args.model, layer=args.layer, method=args.method, image=image,
        channel=getattr(args, "channel", None),
        neuron=tuple(args.neuron) if getattr(args, "neuron", None) else None,
        restarts=args.restarts, iters=args.iters, fine_tune_iters=args.fine_tune, seed=args.seed, C=args.C,
        alpha=args.alpha, beta=args.beta, B=args.B, jitter=args.jitter,
        mask_window=getattr(args, "window", None),
        mask_channels=tuple(args.channels) if getattr(args, "channels", None) else None,
        device=args.device, schedule=args.schedule, frame_every=args.frames,
    )



def _run(args: argparse.Namespace) -> int:
    from workbench.device import resolve_device
    from workbench.models import load_model
    from workbench.preimage import preimage_job

    config = _config(args)
    config.validate()
    out, store = output(args)
    model = load_model(args.model, arch=args.arch, trust=args.trust, device=resolve_device(args.device))
    result = drive(preimage_job(config, out=out, runs=store, model=model), f"{args.method} {args.layer}",
                   quiet=args.quiet)
    summary = {k: result.metrics[k] for k in ("reconstruction_error_mean", "classification_consistency", "activation_over_M",
                                                "activation_over_reference") if k in result.metrics}
    print(json.dumps({"run": str(result.run.path), **summary}))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from workbench.preimage.demo import demo_job

    out, store = output(args)
    path = drive(demo_job(args.model, out, iters=args.iters, device=args.device, runs=store), "demo")
    print(path)
    return 0
