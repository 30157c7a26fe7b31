"""``workbench gabor-fit``: how wavelet-like are a model's filters (the lecture)."""

from __future__ import annotations

import json

from workbench.cli.common import add_model_options, add_output_options, drive, figure_style, open_model, output


def register(sub) -> None:
    p = sub.add_parser("gabor-fit", help="fit every filter with its nearest Gabor atom, per conv layer",
                       description="How wavelet-like are the filters (the lecture: 'the initial filters are similar "
                                   "to Gabor/Wavelet filters')? Each filter slice is fitted with its nearest Gabor "
                                   "atom (orientation, wavelength, width, centre, best phase); its fit is the fraction "
                                   "of its energy the atom explains (1 for an atom). Per conv layer the mean fit is "
                                   "printed beside the fit of random filters of the same size. Writes metrics.json "
                                   "and images/ (the per-layer plot, the first layer's atoms, the second layer's "
                                   "filters as combinations of the first's) to --out.")
    add_model_options(p)
    add_output_options(p, "run folder to write (metrics.json and images/)")
    p.add_argument("--max-slices", type=int, default=None,
                   help="at most this many filter slices fitted per layer, a seeded sample (default 4096)")
    p.add_argument("--json", action="store_true", help="print a JSON list of the layers' rows")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_gabor_fit)


def _gabor_fit(args) -> int:
    from workbench import limits
    from workbench.filters.report import gabor_fit_job

    if args.max_slices is not None:
        limits.integer("--max-slices", args.max_slices, 1, 1_000_000)
    out, store = output(args)
    loaded = open_model(args, device="cpu")
    metrics = drive(gabor_fit_job(loaded, out=out, runs_root=store.root, figure=figure_style(args),
                                  max_slices=args.max_slices), "gabor-fit", quiet=args.quiet)
    rows = [{k: v for k, v in r.items() if k != "filters"} for r in metrics["layers"]]
    if args.json:
        print(json.dumps(rows))
        return 0
    width = max(len(r["layer"]) for r in rows)
    print(f"{'layer':<{width}}  kernel  slices  fit (mean ± std)  random filters")
    for r in rows:
        print(f"{r['layer']:<{width}}  {r['kernel']:>2}x{r['kernel']:<2}  {r['slices']:>6}  "
              f"{r['mean_fit']:.3f} ± {r['std_fit']:.3f}     {r['random_fit']:.3f}")
    return 0
