"""``workbench deform``, ``workbench smoothness`` and ``workbench study`` (Ruderman et al. 2018)."""

from __future__ import annotations

import argparse
import json
import sys

from workbench.cli.common import (add_device_option, add_model_options, add_output_options, drive, figure_style,
                                  open_model, output)
from workbench.config import add_options
from workbench.config.sweep import ExecutorConfig
from workbench.config.deformation import DeformConfig, SmoothnessConfig

#: What each study runs and how long it took here (workbench.studies.deformation has the details).
STUDY_SUMMARIES = {
    "pooling": "Fig. 3: 5 downsamplings x 3 nets, NCD on 13 layers for 128 digits at init and after 3 epochs "
               "(18 CPU-minutes; 60 min wall on a shared, overloaded 2-core machine)",
    "smoothing": "Fig. 4: cifar-vgg-subsample at init, sigma in 0/0.5/1/2/4, 3 nets each, 128 digits "
                 "(1 CPU-minute; 6 min wall on the shared machine)",
    "synthetic": "Fig. 5: 10 one-digit classes deformed with strength C in 1..4 px, 64 examples per class, "
                 "narrow cifar-vgg-maxpool (1x16, 1x32, 1x64) 8 epochs x 3 seeds per C, filter NTV "
                 "(5 CPU-minutes; 17 min wall on the shared machine)",
    "random-labels": "Figs. 6c/7: the 5 downsamplings trained 15 epochs on 256 digits with fixed uniform random "
                     "labels and with the real labels, 2 nets each, filter NTV per conv layer and NCD on 13 layers "
                     "for 128 digits (8 CPU-minutes; 21-36 min wall with --executor process on the shared, overloaded machine)",
    "representations": "CVPR 2015 Table 1 / IJCV Table 2: invert HOG (HOGgle's paired dictionary and the pre-image "
                       "method), HOGb and DSIFT of 4 sample photos at 224 px, 300 iterations, the CVPR error beside the "
                       "papers' (about 4 min on a quiet 2-core machine, plus 1.5 min once to learn HOGgle's dictionary)",
    "hog-template": "IJCV Fig. 15: a HOG face template (logistic regression, 8x8 cells, LFW faces vs non-faces and "
                    "photo windows) by activation maximisation and by HOGgle of its positive part (about 2 min on the "
                    "shared machine, plus 1.5 min once to learn HOGgle's dictionary)",
    "one-layer": "the lecture, Raghu et al. Fig. 6: train exactly one layer (the others frozen at init), for a "
                 "fully connected 1024-100x6-10 net (20 epochs) and digits-vgg (3 epochs), 2 nets each, plus the "
                 "untrained and fully trained nets (3 CPU-minutes; 26 min wall on the shared machine)",
    "wavelet-first-layer": "the lecture's transfer learning: a fixed wavelet-frame first layer (haar, db2 J=1..3, sym4, "
                           "coif1), hard/soft thresholds tau, a linear classifier on the codes; against a learned first "
                           "layer and the pixels, 2 classifiers each, 15 epochs (3 CPU-minutes; 33 min wall on the shared machine)",
}


def register(sub) -> None:
    p = sub.add_parser("deform", help="per-layer sensitivity to random smooth deformations (normalized cosine distance)",
                       description="Measure, for every layer, the normalized cosine distance between the representation "
                                   "of an image and of its random thin-plate-spline deformation (Ruderman et al. 2018, "
                                   "sect. 2.1). Writes metrics.json (layers: layer, mean, std) and images/ to --out.")
    add_model_options(p)
    add_options(p, DeformConfig, skip=("device",))
    p.add_argument("--preset", choices=("cifar", "imagenet"), default=None,
                   help="paper settings: cifar = 3x3 grid / 2 px, imagenet = 5x5 grid / 10 px (overrides --grid/--max-disp)")
    add_device_option(p)
    add_output_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_deform)

    s = sub.add_parser("smoothness", help="normalized total variation TV(W)/|W|_1 of every conv layer",
                       description="Filter smoothness of Ruderman et al. 2018, sect. 4.1: TV(W)/||W||_1 per conv "
                                   "layer (0 for spatially constant filters, about 1.87 for a fresh truncated-normal 3x3 layer).")
    add_model_options(s)
    add_options(s, SmoothnessConfig)
    s.add_argument("--json", action="store_true", help="print a JSON list of {layer, ntv}")
    s.set_defaults(func=_smoothness)

    t = sub.add_parser("study", help="reproduce the papers' experiments (the list and sizes: study --help)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="The papers' experiments at a size that fits a 2-core CPU:\n\n" + "\n".join(
                           f"  {name}: {summary}" for name, summary in STUDY_SUMMARIES.items()))
    t.add_argument("name", choices=tuple(STUDY_SUMMARIES), help="which study")
    add_output_options(t, "run folder to write (metrics.json and images/)")
    t.add_argument("--seeds", type=int, default=None, help="repeats (default: the study's size)")
    t.add_argument("--epochs", type=int, default=None, help="training epochs where the study trains")
    t.add_argument("--n", type=int, default=None, help="images for the sensitivity measurement")
    add_options(t, ExecutorConfig)  # where the study's trainings and measurements run
    add_device_option(t)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_study)


def _deform(args) -> int:
    from dataclasses import replace

    from workbench.config import from_args
    from workbench.deformation.job import check_config, deform_job
    from workbench.deformation.tps import PRESETS

    config = from_args(DeformConfig, args, model=args.model, arch=args.arch)
    if args.preset:
        config = replace(config, grid=PRESETS[args.preset].grid, max_disp=PRESETS[args.preset].max_disp)
    check_config(config)
    out, store = output(args)
    metrics = drive(deform_job(config, model=open_model(args), out=out, runs_root=store.root, figure=figure_style(args)),
                    "deform", quiet=args.quiet)
    width = max(len(r["layer"]) for r in metrics["layers"])
    for row in metrics["layers"]:
        mean = "nan" if row["mean"] is None else f"{row['mean']:.4f}"
        std = "nan" if row["std"] is None else f"{row['std']:.4f}"
        print(f"{row['layer']:<{width}}  {mean}  ± {std}")
    return 0 if metrics["complete"] else 1


def _smoothness(args) -> int:
    from workbench import limits
    from workbench.config import from_args
    from workbench.deformation.job import initialized, smoothness_report
    from workbench.deformation.smoothness import parse_init

    config = from_args(SmoothnessConfig, args, model=args.model)
    limits.seed("--seed", config.seed)
    if config.init is not None:
        parse_init(config.init)
    rows = smoothness_report(initialized(open_model(args, device="cpu"), config.init, config.seed))
    if args.json:
        print(json.dumps(rows))
    else:
        width = max(len(r["layer"]) for r in rows)
        for r in rows:
            print(f"{r['layer']:<{width}}  {r['ntv']:.4f}")
    return 0


def _study(args) -> int:
    from workbench.studies.deformation import STUDIES, run_study

    if args.name == "representations":
        return _representations_study(args)
    if args.name == "hog-template":
        return _hog_template_study(args)
    if args.name in ("one-layer", "wavelet-first-layer"):
        return _lecture_study(args)

    overrides = {k: v for k, v in (("seeds", args.seeds), ("epochs", args.epochs), ("n", args.n)) if v is not None}
    out, store = output(args)
    summary = drive(run_study(args.name, out=out, runs_root=store.root, device=args.device, figure=figure_style(args),
                              executor=args.executor, workers=args.workers, address=args.address, **overrides),
                    f"study {args.name}", quiet=args.quiet)
    for line in STUDIES[args.name].describe(summary):
        print(line)
    if not summary.get("complete", True):  # stopped (a cancel, a stop signal): say so, like every job
        print(f"workbench: study {args.name} cancelled: its run folder keeps what it finished", file=sys.stderr)
        return 1
    return 0


def _lecture_study(args) -> int:
    """``study one-layer`` and ``study wavelet-first-layer``: the lecture's experiments (workbench.studies.lecture)."""
    from workbench.errors import UserError
    from workbench.studies.lecture import LECTURE_STUDIES, run_lecture_study

    if args.executor != "local" or args.workers is not None or args.address is not None:
        raise UserError(f"study {args.name} runs in this process: --executor, --workers and --address are for "
                        f"the deformation studies")
    if args.n is not None:
        raise UserError(f"study {args.name} takes no --n")
    out, store = output(args)
    summary = drive(run_lecture_study(args.name, out=out, runs_root=store.root, device=args.device,
                                      figure=figure_style(args), seeds=args.seeds, epochs=args.epochs),
                    f"study {args.name}", quiet=args.quiet)
    for line in LECTURE_STUDIES[args.name].describe(summary):
        print(line)
    if not summary.get("complete", True):
        print(f"workbench: study {args.name} cancelled: its run folder keeps what it finished", file=sys.stderr)
        return 1
    return 0


def _representations_study(args) -> int:
    """``study representations``: invert HOG, HOGb and DSIFT (CVPR 2015 Table 1, IJCV 2016 Table 2)."""
    from workbench.studies.representations import representations_study, table_markdown

    out, store = output(args)
    summary = drive(representations_study(out=out, runs_root=store.root, device=args.device),
                    "study representations", quiet=args.quiet)
    print(table_markdown(summary))
    return 0 if summary["complete"] else 1


def _hog_template_study(args) -> int:
    """``study hog-template``: a HOG template by activation maximisation and by HOGgle (IJCV 2016 Fig. 15)."""
    from workbench.errors import UserError
    from workbench.studies.hog_template import hog_template_study

    given = [flag for flag, value in (("--seeds", args.seeds), ("--epochs", args.epochs), ("--n", args.n),
                                      ("--workers", args.workers), ("--address", args.address)) if value is not None]
    if given or args.executor != "local":
        raise UserError(f"study hog-template runs in this process at its own size: drop "
                        f"{', '.join(given) or '--executor'}")
    out, store = output(args)
    summary = drive(hog_template_study(out=out, runs_root=store.root, device=args.device),
                    "study hog-template", quiet=args.quiet)
    t, am, hg = summary.get("template", {}), summary.get("activation_maximisation", {}), summary.get("hoggle", {})
    if t:
        print(f"template: held-out accuracy {t['test_accuracy']:.3f} (chance {t['chance_accuracy']:.3f}), "
              f"balanced {t['test_balanced_accuracy']:.3f} (chance 0.5)")
    if am and hg:
        print(f"score <w, HOG(x)> + b: activation maximisation {', '.join(f'{v:.2f}' for v in am['score'])}; "
              f"HOGgle(w+) {hg['score']:.2f}")
    if not summary.get("complete", True):
        print("workbench: study hog-template cancelled: its run folder keeps what it finished", file=sys.stderr)
        return 1
    return 0
