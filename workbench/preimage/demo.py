"""``workbench demo``: a short tour of the three visualisations on the bundled model."""

from __future__ import annotations

from pathlib import Path

from workbench.jobs import CancelToken, Job, Log, Step, relay
from workbench.runs import RunStore, finalise
from workbench.threads import job_threads


def demo_job(model_name: str = "digits-vgg", out: str | Path | None = None, iters: int = 200, device: str = "auto",
             sample: str = "digits:0", cancel: CancelToken | None = None, runs: RunStore | None = None,
             figure=None, *, model) -> Job:
    """Inversion from four depths, maximisation of four channels, caricatures from two layers.

    Each piece is an ordinary pre-image run under ``out/runs/``; ``out/images/grid.png`` and
    ``grid.pdf`` put them in one labelled figure (at the size ``figure``, a
    :class:`~workbench.export.style.FigureStyle`; default a page width). Returns the PNG's path.
    ``model`` is the model ``model_name`` names, opened by the caller (a LoadedModel, with the user's
    consent where it imports code): a job never opens a model itself (issue 21).
    """
    from workbench.config.preimage import PreimageConfig
    from workbench.device import resolve_device

    PreimageConfig(model=model_name, iters=iters, device=str(device), image=sample, restarts=1).validate()
    cancel = cancel or CancelToken()
    device = resolve_device(device)
    model = model.to(device)
    spatial = [l for l in model.layers() if len(l.shape) == 3]
    activations = [l for l in spatial if l.kind in ("ReLU", "Tanh")] or spatial
    depths = [activations[0], activations[len(activations) // 2], activations[-1], spatial[-1]]
    top = activations[-1]
    channels = list(range(min(4, top.shape[0])))
    plan = ([("invert", l, None) for l in depths] + [("maximize", top, c) for c in channels]
            + [("caricature", l, None) for l in (activations[1 if len(activations) > 1 else 0], activations[-2 if len(activations) > 1 else 0])])
    threads = job_threads(model.input_size)
    store = runs or RunStore(Path(out).parent if out is not None else None)
    run = store.create("demo", {"model": model_name, "iters": iters, "sample": sample}, device=str(device), folder=out)
    return (yield from finalise(run, _demo(run, model, model_name, plan, depths, channels, top, iters, sample, device,
                                           cancel, figure), threads=threads))


def _demo(run, model, model_name, plan, depths, channels, top, iters, sample, device, cancel, figure=None):
    from workbench.export.figures import FigureGrid, model_caption
    from workbench.export.render import save_run_figure
    from workbench.config.preimage import PreimageConfig
    from workbench.preimage.solve import preimage_job

    store = RunStore(run.path / "runs")
    results = []
    for i, (method, layer, channel) in enumerate(plan):
        cancel.check()
        config = PreimageConfig(model=model_name, layer=layer.name, method=method, channel=channel,
                                image=None if method == "maximize" else sample, restarts=1, iters=iters,
                                device=str(device), snapshot_every=0)
        yield Log(f"demo {i + 1}/{len(plan)}: {method} {layer.name}" + (f" channel {channel}" if channel is not None else ""))
        job = preimage_job(config, runs=store, model=model, cancel=cancel, figure=figure)

        def progress(event, before=i * iters):  # the demo's own steps; the runs' logs are dropped
            if isinstance(event, Step):
                return Step(before + min(event.iteration, iters), len(plan) * iters, event.values)
            return None

        results.append((yield from relay(job, progress)))
    n_inv, n_max = len(depths), len(channels)
    reference = results[0].reference
    rows = [[reference] + [r.images[0] for r in results[:n_inv]],
            [None] + [r.images[0] for r in results[n_inv:n_inv + n_max]],
            [reference] + [r.images[0] for r in results[n_inv + n_max:]]]
    captions = [["reference"] + [l.name for l in depths],
                [""] + [f"{top.name} channel {c}" for c in channels],
                ["reference"] + [plan[k][1].name for k in range(n_inv + n_max, len(plan))]]
    grid = FigureGrid(rows, row_labels=["inversion", "maximization", "caricature"], captions=captions,
                      title=f"{model_caption(model.name, model.trained)}: natural pre-images (Mahendran & Vedaldi)")
    path = save_run_figure(run, "grid", grid.figure(figure), figure)
    run.write_metrics({"runs": [str(r.run.path) for r in results], "cells": captions})
    return path
