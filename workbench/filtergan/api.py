"""The callers for a run folder: open a trained filter-GAN run, then return the job that works on it.

The jobs (:func:`~workbench.filtergan.evaluate.evaluation_job`,
:func:`~workbench.filtergan.traverse.traversal_job`,
:func:`~workbench.filtergan.figure.filters_figure_job`) receive the loaded
:class:`~workbench.filtergan.train.FilterGan` and open nothing. These functions are what a script
calls with a folder, and what the window's factories call on its worker thread (so the files are
read there, never on the GUI thread); the CLI opens the run itself before it drives a job.

``model`` is the CNN the run was trained on if the caller has it open already (default: the one
run.json names); ``trust`` the user's consent, for this call only, to open a model the run folder
names that is code (TorchScript, a pickle, a Python callable). The other arguments are the job's.
A bad option is refused before the run is read.
"""

from __future__ import annotations

from pathlib import Path

from workbench.config.filtergan import FilterGanEvalConfig, TraversalConfig
from workbench.jobs import CancelToken, Job


def evaluate_filter_gan(run_dir: str | Path, config: FilterGanEvalConfig | None = None, *, model=None,
                        trust: bool = False, cancel: CancelToken | None = None, out: str | Path | None = None,
                        runs=None, figure=None) -> Job:
    """Sect. 5.2 for the trained run ``run_dir``: opens it and returns
    :func:`~workbench.filtergan.evaluate.evaluation_job` of it."""
    from workbench.filtergan.evaluate import evaluation_job
    from workbench.filtergan.train import load_filter_gan

    config = config or FilterGanEvalConfig()
    config.validate()
    fgan = load_filter_gan(run_dir, device=config.device, model=model, trust=trust)
    return evaluation_job(fgan, config, cancel=cancel, out=out, runs=runs, figure=figure)


def traverse(config: TraversalConfig, *, model=None, trust: bool = False, cancel: CancelToken | None = None,
             runs=None, out: str | Path | None = None, figure=None) -> Job:
    """The sect. 4 traversal of the trained run ``config.run``: opens it and returns
    :func:`~workbench.filtergan.traverse.traversal_job` of it."""
    from workbench.filtergan.train import load_filter_gan
    from workbench.filtergan.traverse import traversal_job

    config.validate()
    fgan = load_filter_gan(config.run, device=config.device, model=model, trust=trust)
    return traversal_job(fgan, config, cancel=cancel, runs=runs, out=out, figure=figure)
