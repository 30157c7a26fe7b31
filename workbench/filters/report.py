"""``workbench gabor-fit``: how wavelet-like a model's filters are, as a job writing a run folder.

metrics.json holds one row per conv layer (:func:`workbench.filters.gabor.layer_fits`: the mean fit
of its filter slices to their nearest Gabor atoms, the chance level of random filters of the same
size, and for the first layer every filter's fit and atoms). The figures: ``gabor_fit`` (the mean fit
per layer, ± 2 std over the slices, beside the chance level: the Smoothness dock's view for this
measure), ``first_layer_atoms`` (the first layer's filters above their nearest atoms, best fits first)
and ``composite_filters`` (the second convolution's filters drawn as weighted combinations of the
first layer's, Lee et al. Fig. 3 on the lecture's slide).
"""

from __future__ import annotations

import math
import time
from typing import Any, Generator

import numpy as np

from workbench.jobs import Artifact, CancelToken, Event, Log, Step
from workbench.runs import RunStore, finalise

#: Tiles per row of the first-layer and composite figures, and how many of each are drawn.
SHOWN = 16


def gabor_fit_job(loaded, *, out=None, runs_root=None, figure=None, max_slices: int | None = None,
                  cancel: CancelToken | None = None) -> Generator[Event, None, dict]:
    """Fit every conv layer of ``loaded`` (a :class:`~workbench.models.LoadedModel`) with Gabor atoms."""
    from workbench.filters.gabor import MAX_SLICES, layer_fits

    cancel = cancel or CancelToken()
    max_slices = MAX_SLICES if max_slices is None else int(max_slices)
    config = {"model": loaded.name, "max_slices": max_slices,
              "fit": "fraction of a filter's energy explained by its nearest Gabor atom (best phase)",
              "chance": "the mean fit of i.i.d. Gaussian filters of the same size"}
    run = RunStore(runs_root).create("gabor-fit", config, "cpu", folder=out, model=loaded.facts())
    yield Artifact("run", str(run.path))

    def body():
        started = time.monotonic()
        cancel.check()
        yield Step(0, 3, stage="fitting every conv layer")
        rows = layer_fits(loaded.module, max_slices=max_slices)
        cancel.check()
        metrics: dict[str, Any] = {"config": config, "model": loaded.name, "trained": bool(loaded.trained),
                                   "layers": rows,
                                   "first_layer": {"layer": rows[0]["layer"], "mean_fit": rows[0]["mean_fit"],
                                                   "random_fit": rows[0]["random_fit"],
                                                   "above_chance": rows[0]["mean_fit"] - rows[0]["random_fit"]}}
        yield Step(1, 3, stage="figures")
        from workbench.export.render import save_run_figure

        save_run_figure(run, "gabor_fit", fit_figure(metrics, figure), figure)
        save_run_figure(run, "first_layer_atoms", atoms_figure(loaded.module, rows[0], figure), figure)
        yield Step(2, 3, stage="composite filters")
        composite = composite_figure(loaded.module, tuple(loaded.input_size), figure)
        if composite is not None:
            save_run_figure(run, "composite_filters", composite, figure)
        metrics["seconds"] = round(time.monotonic() - started, 1)
        yield Log(f"first layer {rows[0]['layer']}: mean fit {rows[0]['mean_fit']:.3f} "
                  f"(random {rows[0]['random_fit']:.3f})")
        yield Step(3, 3, stage="done")
        run.write_metrics(metrics)
        return metrics

    return (yield from finalise(run, body(), threads=1))


def fit_figure(metrics: dict, style=None):
    """Mean Gabor fit per conv layer (± 2 std over its filter slices) and the chance level per layer."""
    from workbench.export.figures import model_caption
    from workbench.export.plots import Series, line_figure

    rows = metrics["layers"]
    labels = [f"{r['layer']} ({r['kernel']}×{r['kernel']})" for r in rows]
    series = [Series("filters", [r["mean_fit"] for r in rows], [2 * r["std_fit"] for r in rows], (31, 119, 180)),
              Series("random filters of the same size", [r["random_fit"] for r in rows],
                     [2 * r["random_std"] for r in rows], (150, 150, 150), dashed=True)]
    return line_figure(series, x_labels=labels, xlabel="conv layer", y_range=(0.0, 1.02),
                       ylabel="Gabor fit: energy explained by the nearest atom", style=style,
                       title=f"How Gabor-like are the filters? {model_caption(metrics['model'], metrics['trained'])}")


def _tile(f: np.ndarray) -> np.ndarray:
    return (0.5 + f / (2 * max(float(np.abs(f).max()), 1e-12)))[..., None]


def atoms_figure(module, first: dict, style=None):
    """The first layer's filters (input channel 0, best fits first) above their nearest Gabor atoms."""
    from workbench.deformation.smoothness import conv_layers
    from workbench.export.figures import FigureGrid
    from workbench.filters.gabor import Atom

    _name, conv = conv_layers(module)[0]
    w = conv.weight.detach().cpu().double().numpy()
    order = sorted(range(len(first["filters"])), key=lambda o: -first["filters"][o]["fit"])[:SHOWN]
    filters, atoms, captions = [], [], []
    for o in order:
        a = first["filters"][o]["atoms"][0]
        atom = Atom(math.radians(a["theta_deg"]), a["wavelength"], a["width"], tuple(a["centre"]),
                    math.radians(a["phase_deg"])).draw(w.shape[-1])
        f = w[o, 0]
        atom = atom * (float((atom * f).sum()) / max(float((atom * atom).sum()), 1e-12))  # its best scale
        filters.append(_tile(f))
        atoms.append(_tile(atom))
        captions.append(f"{first['filters'][o]['fit']:.2f}")
    rows = [filters, atoms]
    return FigureGrid(rows, row_labels=["filter", "nearest atom"], col_labels=[str(o) for o in order],
                      captions=[[""] * len(order), captions],
                      title=f"{first['layer']}: filters (input channel 0) and their nearest Gabor atoms, "
                            f"fit under each (chance {first['random_fit']:.2f})").figure(style)


def composite_figure(module, input_size, style=None):
    """Lee et al. Fig. 3: the first layer's filters and the second convolution's, each drawn as a
    weighted combination of the first layer's (None without a second chained convolution)."""
    from workbench.errors import UserError
    from workbench.export.figures import FigureGrid
    from workbench.filters.composite import composite_filters, filter_tiles

    try:
        layers = composite_filters(module, input_size)
    except UserError:
        return None
    if len(layers) < 2:
        return None
    (n1, f1), (n2, f2) = layers[0], layers[1]
    t1, t2 = filter_tiles(f1[:SHOWN]), filter_tiles(f2[:SHOWN])
    n = max(len(t1), len(t2))
    rows = [list(t1) + [None] * (n - len(t1)), list(t2) + [None] * (n - len(t2))]
    return FigureGrid(rows, row_labels=[f"{n1} ({f1.shape[-1]}×{f1.shape[-1]})", f"{n2} ({f2.shape[-1]}×{f2.shape[-1]})"],
                      title=f"First-layer filters (top) and {n2}'s filters as weighted combinations of them "
                            f"(Lee et al. Fig. 3; non-linearities and pooling left out; grey = 0)").figure(style)
