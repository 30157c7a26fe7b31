"""Figure 2 of the filter-GAN (ICLR 2018 submission): "Learned filters of the CNN's 4th layer. We
summed one third of the original channels together in order to visualize the learned filters."

A filter of a deep layer has many input channels (conv4 of digits-vgg: 64) and cannot be shown
as one image; the paper sums the input channels in thirds and reads the three sums as red, green
and blue (:func:`workbench.filtergan.plots.channel_thirds`). We draw the generated filters of
``samples`` random z in that view, under the real filters of the same output channels, as the
paper's figure shows only generated ones and a reader needs the real ones to judge them.

``metrics.json`` says how far the generated filters lie from the real ones, in the filter space
and in the summed view: ``filter_distance_relative`` = mean over sets s and output channels j of
‖G(z_s)_j − w_j‖ / ‖w_j‖, and ``view_distance_relative`` the same for the thirds view T,
‖T(G(z_s)_j) − T(w_j)‖ / ‖T(w_j)‖ (over every output channel, not only the ones drawn). A view
distance well below the filter distance means summing hides what G changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from workbench.config import to_dict
from workbench.config.filtergan_figure import FilterFigureConfig
from workbench.jobs import Artifact, CancelToken, Job, Log
from workbench.runs import RunStore, finalise

KIND = "filtergan-figure"
FIGURE = "filters_fig2"


def relative_distances(real: np.ndarray, generated: np.ndarray) -> dict[str, float]:
    """``filter_distance_relative`` and ``view_distance_relative`` of the module docstring for real
    filters (C_out, C_in, k, k) and generated sets (S, C_out, C_in, k, k)."""
    from workbench.filtergan.plots import channel_thirds

    real = np.asarray(real, dtype=np.float64)
    generated = np.asarray(generated, dtype=np.float64)

    def mean_relative(a: np.ndarray, b: np.ndarray) -> float:
        norm = np.linalg.norm(b.reshape(b.shape[0], -1), axis=1)
        gap = np.linalg.norm((a - b[None]).reshape(a.shape[0], a.shape[1], -1), axis=2)
        return float(np.mean(gap / np.where(norm > 0, norm, 1.0)[None]))

    return {"filter_distance_relative": mean_relative(generated, real),
            "view_distance_relative": mean_relative(channel_thirds(generated), channel_thirds(real))}


def filters_figure_job(fgan, config: FilterFigureConfig, *, cancel: CancelToken | None = None,
                       runs: RunStore | None = None, out: str | Path | None = None, figure=None) -> Job:
    """Draw Figure 2 for the trained filter-GAN ``fgan`` (a loaded :class:`~workbench.filtergan.train.FilterGan`,
    the one of the run ``config.run``: the job opens no model and no run itself) into a new run folder:
    ``images/filters_fig2.png`` and ``.pdf`` (at the size ``figure``, a
    :class:`~workbench.export.style.FigureStyle`) and ``metrics.json``."""
    from workbench.device import describe
    from workbench.export.figures import model_caption
    from workbench.export.render import save_run_figure
    from workbench.filtergan.plots import filters_figure, thirds_groups

    config.validate()
    cancel = cancel or CancelToken()
    z = torch.randn(config.samples, fgan.config.latent_dim, generator=torch.Generator().manual_seed(config.seed))
    weights, _ = fgan.filters(z)
    generated = weights.detach().cpu().numpy()
    real = fgan.split.conv.weight.detach().cpu().numpy()
    c_out, c_in = real.shape[:2]
    shown = list(range(min(config.channels, c_out)))
    store = runs or RunStore(Path(out).parent if out is not None else None)
    run = store.create(KIND, to_dict(config), device=describe(fgan.device), folder=out,
                       model=fgan.model.facts() if hasattr(fgan.model, "facts") else None)

    def body():
        yield Artifact("run", str(run.path))
        cancel.check()
        layer = fgan.config.layer
        groups = thirds_groups(c_in)
        title = model_caption(
            f"{fgan.config.model} {layer}: real filters (top row) and generated ones for {config.samples} random z; "
            f"input channels {groups[0][0]}–{groups[0][1] - 1}, {groups[1][0]}–{groups[1][1] - 1} and "
            f"{groups[2][0]}–{groups[2][1] - 1} summed into red, green, blue (Fig. 2)",
            bool(getattr(fgan.model, "trained", True)))
        save_run_figure(run, FIGURE, filters_figure(real[shown], generated[:, shown], channels=shown,
                                                    title=title).figure(figure), figure)
        yield Artifact("figure", f"images/{FIGURE}.png")
        metrics = {"layer": layer, "filter_shape": list(real.shape), "channels_shown": shown,
                   "samples": config.samples, "thirds": [list(g) for g in groups], **relative_distances(real, generated)}
        run.write_metrics(metrics)
        yield Log(f"{layer}: generated filters lie {metrics['filter_distance_relative']:.3f} of a filter's norm from "
                  f"the real one, {metrics['view_distance_relative']:.3f} in the summed view")
        return {**metrics, "run": str(run.path)}

    return (yield from finalise(run, body()))
