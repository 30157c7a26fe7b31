"""``workbench deform``, ``workbench smoothness`` and ``workbench study`` (Ruderman et al. 2018)."""

from __future__ import annotations

import argparse
import json

from workbench.cli.common import add_device_option, add_output_options, drive, output

#: What each study runs and how long it took here (workbench.deformation.studies has the details).
STUDY_SUMMARIES = {
    "pooling": "Fig. 3: 5 downsamplings x 3 nets, NCD on 13 layers for 128 digits at init and after 3 epochs "
               "(18 CPU-minutes; 60 min wall on a shared, overloaded 2-core machine)",
    "smoothing": "Fig. 4: cifar-vgg-subsample at init, sigma in 0/0.5/1/2/4, 3 nets each, 128 digits "
                 "(1 CPU-minute; 6 min wall on the shared machine)",
    "synthetic": "Fig. 5: 10 one-digit classes deformed with strength C in 1..4 px, 64 examples per class, "
                 "narrow cifar-vgg-maxpool (1x16, 1x32, 1x64) 8 epochs x 3 seeds per C, filter NTV "
                 "(5 CPU-minutes; 17 min wall on the shared machine)",
}


def register(sub) -> None:
    p = sub.add_parser("deform", help="per-layer sensitivity to random smooth deformations (normalized cosine distance)",
                       description="Measure, for every layer, the normalized cosine distance between the representation "
                                   "of an image and of its random thin-plate-spline deformation (Ruderman et al. 2018, "
                                   "sect. 2.1). Writes metrics.json (layers: layer, mean, std) and images/ to --out.")
    p.add_argument("--model", required=True, help="zoo name (see `workbench zoo list`) or a model file")
    p.add_argument("--arch", default=None, help="architecture name for a state_dict / safetensors file")
    p.add_argument("--trust", action="store_true", help="allow a full pickle or a TorchScript file (both run code from the file when loaded)")
    p.add_argument("--images", default="digits", help="'digits' (bundled test digits) or a folder of image files")
    p.add_argument("--n", type=int, default=128, help="number of images (default 128, as in the paper)")
    p.add_argument("--preset", choices=("cifar", "imagenet"), default=None,
                   help="paper settings: cifar = 3x3 grid / 2 px, imagenet = 5x5 grid / 10 px (overrides --grid/--max-disp)")
    p.add_argument("--grid", type=int, default=3, help="control points per side (default 3)")
    p.add_argument("--max-disp", type=float, default=2.0, help="maximum control-point displacement in pixels (default 2)")
    p.add_argument("--seeds", type=int, default=3, help="repeats with different deformations (default 3)")
    p.add_argument("--seed", type=int, default=0, help="first seed (repeats use seed, seed+1, ...)")
    p.add_argument("--layers", default=None, help="comma-separated layer names (default: the paper's layers for the "
                                                  "CIFAR-style nets, otherwise input and every layer)")
    p.add_argument("--init", default=None, help="measure a fresh initialization instead of the weights: "
                                                "truncnormal, default or gaussian:SIGMA")
    p.add_argument("--batch-size", type=int, default=64)
    add_device_option(p)
    add_output_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_deform)

    s = sub.add_parser("smoothness", help="normalized total variation TV(W)/|W|_1 of every conv layer",
                       description="Filter smoothness of Ruderman et al. 2018, sect. 4.1: TV(W)/||W||_1 per conv "
                                   "layer (0 for spatially constant filters, about 1.87 for a fresh truncated-normal 3x3 layer).")
    s.add_argument("--model", required=True, help="zoo name or a model file")
    s.add_argument("--arch", default=None, help="architecture name for a state_dict / safetensors file")
    s.add_argument("--trust", action="store_true", help="allow a full pickle or a TorchScript file (both run code from the file when loaded)")
    s.add_argument("--init", default=None, help="measure a fresh initialization of the architecture: "
                                                "truncnormal, default or gaussian:SIGMA")
    s.add_argument("--seed", type=int, default=0, help="seed of the fresh initialization (default 0)")
    s.add_argument("--json", action="store_true", help="print a JSON list of {layer, ntv}")
    s.set_defaults(func=_smoothness)

    t = sub.add_parser("study", help="reproduce the paper's comparisons (pooling, smoothing, synthetic)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Ruderman et al. 2018 at a size that fits a 2-core CPU:\n\n" + "\n".join(
                           f"  {name}: {summary}" for name, summary in STUDY_SUMMARIES.items()))
    t.add_argument("name", choices=tuple(STUDY_SUMMARIES), help="which study")
    add_output_options(t, "run folder to write (metrics.json and images/)")
    t.add_argument("--seeds", type=int, default=None, help="repeats (default: the study's size)")
    t.add_argument("--epochs", type=int, default=None, help="training epochs where the study trains")
    t.add_argument("--n", type=int, default=None, help="images for the sensitivity measurement")
    add_device_option(t)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_study)


def _deform(args) -> int:
    from workbench.deformation.job import DeformConfig, deform_job
    from workbench.deformation.tps import PRESETS

    grid, max_disp = args.grid, args.max_disp
    if args.preset:
        grid, max_disp = PRESETS[args.preset].grid, PRESETS[args.preset].max_disp
    layers = tuple(x.strip() for x in args.layers.split(",") if x.strip()) if args.layers else None
    out, store = output(args)
    config = DeformConfig(model=args.model, arch=args.arch, images=args.images, n=args.n,
                          grid=grid, max_disp=max_disp, seeds=args.seeds, seed=args.seed, layers=layers,
                          init=args.init, batch_size=args.batch_size, device=args.device)
    metrics = drive(deform_job(config, out=out, runs_root=store.root, trust=args.trust), "deform", quiet=args.quiet)
    width = max(len(r["layer"]) for r in metrics["layers"])
    for row in metrics["layers"]:
        mean = "nan" if row["mean"] is None else f"{row['mean']:.4f}"
        std = "nan" if row["std"] is None else f"{row['std']:.4f}"
        print(f"{row['layer']:<{width}}  {mean}  ± {std}")
    return 0 if metrics["complete"] else 1


def _smoothness(args) -> int:
    from workbench import limits
    from workbench.deformation.job import load_handle, smoothness_report
    from workbench.smoothness import parse_init

    limits.seed("--seed", args.seed)
    if args.init is not None:
        parse_init(args.init)
    handle = load_handle(args.model, arch=args.arch, trust=args.trust, device="cpu", init=args.init, seed=args.seed)
    rows = smoothness_report(handle)
    if args.json:
        print(json.dumps(rows))
    else:
        width = max(len(r["layer"]) for r in rows)
        for r in rows:
            print(f"{r['layer']:<{width}}  {r['ntv']:.4f}")
    return 0


def _study(args) -> int:
    from workbench.deformation.studies import STUDIES, run_study

    overrides = {k: v for k, v in (("seeds", args.seeds), ("epochs", args.epochs), ("n", args.n)) if v is not None}
    out, store = output(args)
    summary = drive(run_study(args.name, out=out, runs_root=store.root, device=args.device, **overrides),
                    f"study {args.name}", quiet=args.quiet)
    for line in STUDIES[args.name].describe(summary):
        print(line)
    return 0 if summary.get("complete", True) else 1
