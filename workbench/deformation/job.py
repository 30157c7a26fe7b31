"""The ``deform`` and ``smoothness`` jobs: measure a model their caller opened, write a run folder.

Both receive a :class:`~workbench.models.LoadedModel` (the CLI, the API and the window's workers
open it through :func:`workbench.models.sources.open_model`) and never open one themselves
(issue 21); :func:`initialized` derives a freshly initialised copy of it for ``--init``.

``metrics.json`` of a deform run holds ``layers``: a list in network order of
``{"layer", "mean", "std"}`` (normalized cosine distance over the repeats), plus the per-repeat
values, the pairwise medians and the settings. ``images/`` holds ``sensitivity.png`` and
``sensitivity.pdf``, and ``pairs.png``/``pairs.pdf`` (original | deformed | displacement arrows over
the original, a few images). The window's Deformation and Smoothness docks export the same figures
(:func:`sensitivity_plot`, :func:`smoothness_plot`) from the same metrics.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Generator

import numpy as np
import torch

from workbench.config import to_dict
from workbench.config.deformation import DeformConfig  # noqa: F401  (its home before the config package)
from workbench.data.images import IMAGE_SUFFIXES
from workbench.deformation.features import INPUT, default_layers
from workbench.deformation.sensitivity import SensitivityResult, deformation_sensitivity
from workbench.deformation.tps import control_points, random_deform
from workbench.errors import UserError
from workbench.export.render import save_run_figure
from workbench.export.style import FigureStyle
from workbench.jobs import Artifact, CancelToken, Event, Log, Step
from workbench.models.sources.loaded import LoadedModel
from workbench.runs import Run, RunStore, finalise
from workbench.threads import job_threads


def layers_to_measure(model: LoadedModel) -> list[str]:
    """The layers a deform run measures unless ``--layers`` names them: Ruderman et al.'s Fig. 3
    layers (:func:`~workbench.deformation.features.default_layers`) where the model is one of their
    CIFAR-style nets and its layer table has them all, else the input and every layer of the table."""
    names = [info.name for info in model.layers()]
    paper = default_layers(model.module)
    if any(n.startswith("down") for n in paper) and all(n in names or n == INPUT for n in paper):
        return paper
    return names if INPUT in names else [INPUT] + names


def initialized(model: LoadedModel, init: str | None, seed: int = 0) -> LoadedModel:
    """``model`` itself where ``init`` is None, else a copy of it whose weights are a fresh ``init``
    initialization (:func:`workbench.deformation.smoothness.initialize`) from ``seed``: named
    "NAME (INIT init)", untrained, its source the initialization; ``model`` is left as it was."""
    from workbench.deformation.smoothness import initialize

    if init is None:
        return model
    module = initialize(copy.deepcopy(model.module).cpu(), init, seed).to(model.device).eval()
    return model.with_module(module, name=f"{model.name} ({init} init)", trained=False, notice=None,
                             source=f"fresh {init} initialization, seed {seed}")


def image_source(source: str, input_size: tuple[int, int, int]) -> str:
    """``auto`` read for a model: the bundled digits for a grey-input net, the installed natural photos
    (``workbench.data.photos``) for a colour one, so an ImageNet net is never measured on upscaled digits."""
    if source != "auto":
        return source
    return "digits" if input_size[0] == 1 else "photos"


def load_images(source: str, n: int, input_size: tuple[int, int, int]) -> torch.Tensor:
    """``digits`` (the first ``n`` bundled test digits), ``photos`` (the first ``n`` installed natural
    photos), ``auto`` (:func:`image_source`) or a folder of image files; (N, C, H, W) in [0, 1]."""
    from workbench.data.images import load_image, prepare_image

    if n < 2:
        raise UserError(f"--n must be at least 2 (the median runs over pairs of images), got {n}")
    c, h, w = input_size
    source = image_source(source, input_size)
    if source == "digits":
        from workbench.data.digits import load_digits32

        x, _ = load_digits32("test")
        x = x[:n]
        if tuple(x.shape[1:]) == (c, h, w):
            return x.clone()
        arrays = [x[i].permute(1, 2, 0).numpy() for i in range(len(x))]
    elif source == "photos":
        from workbench.data.photos import natural_photos

        _, photos = natural_photos(c, (h, w))
        if len(photos) < 2:
            raise UserError("fewer than 2 natural photos are installed: pass --images with a folder of photos")
        return torch.from_numpy(photos[:n].copy())
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise UserError(f"--images must be 'auto', 'digits', 'photos' or a folder of images; {source} is not a folder")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:n]
        if len(files) < 2:
            raise UserError(f"{source} holds {len(files)} image file(s): put at least 2 PNG/JPEG files there")
        arrays = [load_image(p) for p in files]
    prepared = [prepare_image(a, c, (h, w)) for a in arrays]
    return torch.from_numpy(np.stack(prepared)).permute(0, 3, 1, 2).contiguous()


def check_config(config: DeformConfig, input_size: tuple[int, int, int] | None = None) -> None:
    """Every option in range and the thin-plate-spline system small enough to solve; with the
    model's ``input_size`` also a grid no finer than its pixels."""
    from workbench import limits
    from workbench.device import check_device_name

    limits.text("--model", config.model)
    limits.text("--images", config.images)
    check_device_name(config.device)
    limits.integer("--n", config.n, 2, MAX_IMAGES)
    limits.integer("--seeds", config.seeds, 1, MAX_REPEATS)
    limits.seed("--seed", config.seed)
    limits.integer("--grid", config.grid, 2, input_size and min(input_size[1:]))
    limits.real("--max-disp", config.max_disp, 0.0, MAX_DISPLACEMENT)
    limits.integer("--batch-size", config.batch_size, 1, MAX_IMAGES)
    limits.integer("pairs", config.pairs, 0, MAX_IMAGES)
    if config.layers is not None:
        if not config.layers or not all(isinstance(n, str) and n for n in config.layers):
            raise UserError(f"--layers must name at least one layer, got {config.layers!r}")
    if config.init is not None:
        from workbench.deformation.smoothness import parse_init

        _, sigma = parse_init(config.init)
        limits.real("the sigma of gaussian:SIGMA", sigma, high=MAX_DISPLACEMENT)
    k = config.grid * config.grid + 3
    limits.require_memory(8 * 3 * k * k, f"a {config.grid}×{config.grid} grid of control points",
                          "lower --grid", None)


#: Upper bounds beyond which an option is a typo rather than a setting.
MAX_IMAGES = 100_000
MAX_REPEATS = 1_000_000
MAX_DISPLACEMENT = 1000.0


def sensitivity_plot(results: list[tuple[str, SensitivityResult | dict[str, Any]]], title: str = "",
                     style: FigureStyle | None = None):
    """Normalized cosine distance per layer, one line and ±2 std band per result (a matplotlib Figure).

    A result is a :class:`SensitivityResult` or a deform run's metrics (``layers`` rows of
    ``{"layer", "mean", "std"}``, as the window's Deformation dock holds them)."""
    from workbench.export.plots import Series, line_figure

    curves = [(label, *_curve(r)) for label, r in results]
    series = [Series(label, mean, 2 * std) for label, _, mean, std in curves]
    names, xlabel = _shared_layers([layers for _, layers, _, _ in curves], "layer")
    return line_figure(series, x_labels=names, title=title, xlabel=xlabel,
                       ylabel="normalized cosine distance (mean ± 2 std)", style=style)


def _shared_layers(lists: list[list[str]], what: str) -> tuple[list[str], str]:
    """The x axis of curves over layers: their names when every curve has as many layers (where
    the names differ, each name: ``down1/down1_relu``), else the depth (1 = the first), so no
    curve is drawn over another model's layer names."""
    if all(len(names) == len(lists[0]) for names in lists):
        return ["/".join(dict.fromkeys(column)) for column in zip(*lists)], what
    return [str(k + 1) for k in range(max(len(names) for names in lists))], f"{what} (depth; the models' layers differ)"


def _curve(result: SensitivityResult | dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    if isinstance(result, SensitivityResult):
        return list(result.layers), np.asarray(result.mean, float), np.asarray(result.std, float)
    rows = result["layers"]
    return ([r["layer"] for r in rows], np.array([np.nan if r["mean"] is None else r["mean"] for r in rows], float),
            np.array([0.0 if r.get("std") is None else r["std"] for r in rows], float))


def sensitivity_title(results: list[tuple[str, dict[str, Any]]]) -> str:
    """The title of a deformation plot of deform runs' metrics: the model (one) or the comparison,
    with the untrained mark where a model was never trained."""
    untrained = [m.get("model", label) for label, m in results if untrained_mark(m.get("model", label), m.get("trained"))]
    if len(results) == 1:
        label, m = results[0]
        return f"{m.get('model', label)}{untrained_mark(m.get('model', label), m.get('trained'))}: deformation sensitivity"
    return "Deformation sensitivity" + (f" · {_mark()}: {', '.join(dict.fromkeys(untrained))}" if untrained else "")


def _mark() -> str:
    from workbench.export.figures import UNTRAINED_MARK

    return UNTRAINED_MARK


def untrained_mark(name: str, trained: bool | None) -> str:
    """A title's warning for weights that were never trained (a chosen fresh init says so itself)."""
    return "" if trained is not False or "init)" in name else f" · {_mark()}"


def deformation_examples(images: torch.Tensor, grid: int, max_disp: float, seed: int, count: int):
    """The first ``count`` images, deformed (seeded), with their displacement fields and the control points."""
    x = images[:count].float()
    g = torch.Generator().manual_seed(seed)
    deformed, field, _ = random_deform(x, grid, max_disp, g)
    h, w = x.shape[-2:]
    return (x.permute(0, 2, 3, 1).numpy(), deformed.permute(0, 2, 3, 1).numpy(), field.numpy(),
            control_points(grid, h, w).numpy())


def pairs_figure(examples, *, title: str = "", style: FigureStyle | None = None, tile: float | None = None):
    """Original | deformed | displacement (arrows over the original) per image, as a drawn grid
    (:class:`~workbench.export.figures.GridDrawing`; its ``fig`` is the Figure)."""
    from workbench.export.figures import FigureGrid
    from workbench.export.plots import draw_displacement
    from workbench.export.render import print_context

    originals, deformed, fields, ctrl = examples
    grid = FigureGrid([[o, d, o] for o, d in zip(originals, deformed)],
                      col_labels=["original", "deformed", "displacement"], title=title)
    drawing = grid.draw(style, tile=tile)
    with print_context(style):
        for k in range(len(originals)):
            draw_displacement(drawing.ax, drawing.boxes[(k, 2)], originals[k].shape[:2], fields[k], control=ctrl,
                              style=style)
    return drawing


def example_pairs(images: torch.Tensor, grid: int, max_disp: float, seed: int, count: int) -> list[np.ndarray]:
    """Original | deformed | arrows over the original, for the first ``count`` images, as pixels
    (the window's preview: tiles 256 pixels high)."""
    from workbench.export.render import print_context, to_array

    examples = deformation_examples(images, grid, max_disp, seed, count)
    out = []
    for k in range(len(examples[0])):
        one = tuple(e[k:k + 1] for e in examples[:3]) + (examples[3],)
        drawing = pairs_figure(one, tile=2.0)
        with print_context():
            out.append(to_array(drawing.fig, 256.5 / drawing.tile_height))
    return out


def deform_job(config: DeformConfig, *, model: LoadedModel, out: str | Path | None = None,
               runs_root: str | Path | None = None, cancel: CancelToken | None = None,
               figure: FigureStyle | None = None) -> Generator[Event, None, dict]:
    """Measure the per-layer deformation sensitivity of ``model`` and write a run folder; returns its metrics.

    ``model`` is the model opened by the caller (a :class:`~workbench.models.LoadedModel` from
    :func:`workbench.models.sources.open_model`, with the user's consent where it is code): a job
    never opens a model itself (issue 21). With ``config.init`` the job measures a fresh
    initialization of a copy of it (:func:`initialized`, seeded by ``config.seed``), never the
    weights. ``figure`` is the size of the run folder's figures (default: a page width).
    """
    from workbench.device import describe, resolve_device

    cancel = cancel or CancelToken()
    check_config(config)
    device = resolve_device(config.device)
    model = initialized(model, config.init, config.seed)
    if model.notice:
        yield Log(model.notice, "warning")
    check_config(config, model.input_size)
    default = layers_to_measure(model)
    layers = list(config.layers) if config.layers else default
    known = set(default) | {n for n, _ in model.module.named_modules() if n}
    unknown = [n for n in layers if n not in known]
    if unknown:
        raise UserError(f"unknown layer(s) {', '.join(unknown)} in {model.name}: "
                        f"see `workbench layers --model {config.model}` for the names")
    images = load_images(config.images, config.n, model.input_size)
    threads = job_threads(model.input_size, config.batch_size)
    run = RunStore(runs_root).create("deform", to_dict(config), describe(device), folder=out, model=model.facts())
    yield Artifact("run", str(run.path))
    return (yield from finalise(run, _deform(config, model, images, layers, device, cancel, run, figure),
                                threads=threads))


def _deform(config: DeformConfig, model: LoadedModel, images, layers, device, cancel: CancelToken, run: Run,
            figure: FigureStyle | None = None):
    seeds = [config.seed + k for k in range(config.seeds)]
    started = time.monotonic()
    result = yield from deformation_sensitivity(
        model.module, images, layers, mean=model.mean, std=model.std, grid=config.grid,
        max_disp=config.max_disp, seeds=seeds, batch_size=config.batch_size, device=device, cancel=cancel)
    metrics = sensitivity_metrics(result, model, config, images.shape[0], time.monotonic() - started)
    run.write_metrics(metrics)
    if len(result.values):
        plot = sensitivity_plot([(model.name, result)], sensitivity_title([(model.name, metrics)]), style=figure)
        yield Artifact("plot", str(save_run_figure(run, "sensitivity", plot, figure)))
    if config.pairs > 0:
        examples = deformation_examples(images, config.grid, config.max_disp, seeds[0], config.pairs)
        save_run_figure(run, "pairs", pairs_figure(examples, style=figure).fig, figure)
    if not result.complete:
        run.outcome = "cancelled"
        yield Log(f"cancelled after {len(result.values)} of {len(seeds)} repeats", "warning")
    return metrics


def _untrained(model: LoadedModel) -> str:
    """A title's warning for weights that were never trained (a chosen fresh init says so itself)."""
    return untrained_mark(model.name, model.trained)


def sensitivity_metrics(result: SensitivityResult, model: LoadedModel, config: DeformConfig, n: int,
                        seconds: float) -> dict[str, Any]:
    return {
        "model": model.name, "trained": model.trained, "source": model.source, "n_images": n, "grid": config.grid,
        "max_disp": config.max_disp, "seeds": result.seeds, "complete": result.complete,
        "layers": result.table(),
        "per_seed": [[None if not np.isfinite(v) else float(v) for v in row] for row in result.values],
        "pairwise_median": [None if not np.isfinite(v) else float(v) for v in result.median_distance],
        "seconds": round(seconds, 3),
    }


def smoothness_report(model: LoadedModel) -> list[dict[str, Any]]:
    """TV(W)/‖W‖₁ of each conv layer of ``model`` (Ruderman et al. 2018, sect. 4.1): ``[{layer, ntv}]``."""
    from workbench.deformation.smoothness import filter_smoothness

    layers = filter_smoothness(model.module)
    if not layers:
        raise UserError(f"{model.name} has no convolution layers with a spatial kernel to measure")
    return [{"layer": s.layer, "ntv": s.ntv} for s in layers]


def init_level(model: LoadedModel, seed: int = 0) -> float:
    """Mean NTV of a fresh truncated-normal initialization of the same architecture (the dotted line)."""
    from workbench.deformation.smoothness import filter_smoothness, initialize

    fresh = initialize(copy.deepcopy(model.module).cpu(), "truncnormal", seed)
    values = [s.ntv for s in filter_smoothness(fresh)]
    return float(np.mean(values)) if values else float("nan")


def smoothness_plot(models: list[tuple[str, list[dict[str, Any]]]], level: float | None,
                    untrained: bool = False, style: FigureStyle | None = None):
    """NTV per conv layer, one line per model, the fresh initialization's level dotted (a Figure)."""
    from workbench.export.figures import UNTRAINED_MARK
    from workbench.export.plots import HLine, Series, line_figure

    series = [Series(name, [r["ntv"] for r in rows]) for name, rows in models]
    hlines = [HLine(level, f"initialization ({level:.3f})")] if level is not None and np.isfinite(level) else []
    names, xlabel = _shared_layers([[r["layer"] for r in rows] for _, rows in models], "conv layer")
    return line_figure(series, x_labels=names, xlabel=xlabel,
                       ylabel="normalized total variation TV(W)/|W|1", hlines=hlines, style=style,
                       title="Filter smoothness (lower is smoother)" + (f" · {UNTRAINED_MARK}" if untrained else ""))


def smoothness_plot_of_runs(results: list[tuple[str, dict[str, Any]]], style: FigureStyle | None = None):
    """:func:`smoothness_plot` of smoothness runs' metrics (as the window's Smoothness dock holds them)."""
    levels = [m["init_ntv"] for _, m in results if m.get("init_ntv") is not None]
    if len(results) == 1:
        label, m = results[0]
        return smoothness_plot([(label, m["layers"])], float(np.mean(levels)) if levels else None,
                               bool(untrained_mark(m.get("model", label), m.get("trained"))), style)
    # several models: each curve's name says whether its weights were trained
    return smoothness_plot([(label + untrained_mark(m.get("model", label), m.get("trained")), m["layers"])
                            for label, m in results], float(np.mean(levels)) if levels else None, False, style)


def smoothness_job(model: LoadedModel, *, out: str | Path | None = None, runs_root: str | Path | None = None,
                   cancel: CancelToken | None = None, figure: FigureStyle | None = None) -> Generator[Event, None, dict]:
    """NTV per conv layer of ``model`` (opened by the caller, like :func:`deform_job`'s) and of a
    fresh initialization; writes a run folder (its figure at the size ``figure``, default a page width)."""
    cancel = cancel or CancelToken()
    run = RunStore(runs_root).create("smoothness", {"model": model.name, "source": model.source}, "cpu", folder=out,
                                     model=model.facts())
    yield Artifact("run", str(run.path))
    return (yield from finalise(run, _smoothness(model, cancel, run, figure), threads=1))


def _smoothness(model: LoadedModel, cancel: CancelToken, run: Run, figure: FigureStyle | None = None):
    rows = smoothness_report(model)
    yield Step(1, 2, stage="weights")
    cancel.check()
    level = init_level(model)
    yield Step(2, 2, stage="initialization")
    metrics = {"model": model.name, "trained": model.trained, "source": model.source, "layers": rows,
               "init_ntv": level}
    run.write_metrics(metrics)
    save_run_figure(run, "smoothness", smoothness_plot([(model.name, rows)], level, untrained=bool(_untrained(model)),
                                                       style=figure), figure)
    return metrics
