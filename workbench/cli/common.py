"""Helpers shared by the subcommands: progress bar, model/device options, running a job."""

from __future__ import annotations

import sys
from typing import Any

from workbench.jobs import Artifact, Event, Job, Log, Step, Throttle, run_job


class ProgressBar:
    """The progress of one job on stderr: on a terminal a rich bar redrawn in place (at most every
    0.1 s), with the elapsed time, an estimate of the time left and the first values of the last
    step; piped, a plain line per 10 % (``label: done/total (pct%) extra``), which logs and tests read."""

    def __init__(self, label: str, stream=None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_pct = -1
        self._bar = None   # rich.progress.Progress while a bar is shown
        self._task = None
        self._redraw = Throttle(0.1)

    def update(self, done: int, total: int, extra: str = "") -> None:
        if self._tty:
            if self._bar is None:
                self._bar = self._start(total)
            if self._redraw() or done >= total:
                self._bar.update(self._task, completed=done, total=max(total, 1), extra=extra, refresh=True)
            return
        pct = int(100 * done / max(total, 1))
        if pct // 10 != self._last_pct // 10 or done == total:  # a line per 10 % when piped
            self._last_pct = pct
            self.stream.write(f"{self.label}: {done}/{total} ({pct}%) {extra}\n")
            self.stream.flush()

    def _start(self, total: int):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                       TextColumn("{task.fields[extra]}", markup=False),
                       console=Console(file=self.stream, highlight=False), auto_refresh=False)
        self._task = bar.add_task(self.label, total=max(total, 1), extra="")
        bar.start()
        return bar

    def print(self, text: str) -> None:
        """A line of text above the bar (the bar stays at the bottom on a terminal)."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=self.stream)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.refresh()
            self._bar.stop()
            self._bar = None


def drive(job: Job, label: str, quiet: bool = False) -> Any:
    """Run ``job`` with a progress bar; logs go to stderr. Ctrl+C and SIGTERM cancel it (see
    :func:`workbench.signals.stop_signals_cancel`, installed by ``workbench.cli.main``)."""
    bar = ProgressBar(label)

    def on_event(event: Event) -> None:
        if quiet:
            return
        if isinstance(event, Step):
            extra = " ".join(f"{k}={v:.3g}" for k, v in list(event.values.items())[:2])
            bar.update(event.iteration, event.total, extra)
        elif isinstance(event, Log):
            prefix = "" if event.level == "info" else f"{event.level}: "
            bar.print(f"{prefix}{event.message}")
        elif isinstance(event, Artifact) and event.name == "run":
            bar.print(f"run folder: {event.path}")

    try:
        return run_job(job, on_event)
    finally:
        if not quiet:
            bar.close()


def add_output_options(parser, what: str = "run folder to write") -> None:
    """``--out`` (a new folder) and ``--workspace`` (where a new folder is made without --out), and
    the size of the run folder's figures (:func:`add_figure_options`)."""
    parser.add_argument("--out", default=None, help=f"{what} (default: a new folder in the workspace)")
    parser.add_argument("--workspace", default=None, metavar="DIR",
                        help="where runs go without --out (default: $WORKBENCH_WORKSPACE, else runs/ in your "
                             "user data folder; `workbench runs` lists it)")
    add_figure_options(parser)


def add_figure_options(parser) -> None:
    """``--figure-size column|page|slide`` and ``--figure-dpi``: the fields of
    :class:`~workbench.export.style.FigureStyle` (the run folder's figures, PNG and PDF)."""
    from workbench.config import add_options
    from workbench.export.style import FigureStyle

    add_options(parser, FigureStyle)


def figure_style(args):
    """The :class:`~workbench.export.style.FigureStyle` the command line gives (the default where
    the command has no figure options); a bad ``--figure-dpi`` is a UserError."""
    from workbench.config import from_args
    from workbench.export.style import FigureStyle

    if not (hasattr(args, "size") and hasattr(args, "dpi")):
        return FigureStyle()
    return from_args(FigureStyle, args)


def output(args):
    """(``--out`` checked as a new folder or None, the workspace's RunStore). The figures' size is
    :func:`figure_style` of the same arguments."""
    from workbench.runs import RunStore, check_new_folder

    figure_style(args)  # a bad --figure-dpi is refused before any folder exists
    out = check_new_folder(args.out) if args.out is not None else None
    return out, RunStore(args.workspace)


def add_device_option(parser) -> None:
    parser.add_argument("--device", default="auto", help="auto (default: cuda, then mps, then cpu), cpu, cuda or mps")


#: ``--trust``'s help: what it allows, on every command that opens a model.
TRUST_HELP = ("allow what runs code: a full pickle or a TorchScript file, and a package.module:callable named by "
              "a file (a run folder, a sweep or atlas folder) rather than typed here; only for files you trust")


#: ``--trust``'s help on a command that reopens a run folder's model.
RUN_TRUST_HELP = ("open the model the run folder names even if it is code (TorchScript, a full pickle, a Python "
                  "callable): only for runs you trust")


def add_trust_option(parser, help: str = TRUST_HELP) -> None:
    """``--trust``: consent, given on this command line each time, never stored in a config or run.json."""
    parser.add_argument("--trust", action="store_true", help=help)


def add_model_options(parser, default: str | None = None, *, model_help: str | None = None,
                      flags: tuple[str, ...] = ("--model",)) -> None:
    """``--model SPEC`` and the options of :class:`~workbench.config.model.ModelSpec`, plus ``--trust``
    (the one model option group of every command). ``default`` makes ``--model`` optional;
    ``model_help`` (with ``flags``) says what an optional ``--model`` left out means instead."""
    from workbench.config import add_options
    from workbench.config.model import ModelSpec

    if default is None and model_help is None:
        add_options(parser, ModelSpec)
    else:
        parser.add_argument(*flags, dest="model", default=default,
                            help=model_help or f"the model (default {default}): a zoo name, a model "
                            f"file, package.module:callable or timm:NAME")
        add_options(parser, ModelSpec, skip=("model",))
    add_trust_option(parser)


def model_spec(args):
    """The :class:`~workbench.config.model.ModelSpec` the command line gives, checked."""
    from workbench.config import from_args
    from workbench.config.model import ModelSpec

    spec = from_args(ModelSpec, args)
    spec.validate()
    return spec


def open_model(args, device=None):
    """The model the command line names (``--model`` and its options, ``--trust``) on ``device``."""
    from workbench.device import resolve_device
    from workbench.models import load_model

    device = resolve_device(getattr(args, "device", "cpu") if device is None else device)
    return load_model(model_spec(args), trust=args.trust, device=device)
