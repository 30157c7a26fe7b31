"""The ``workbench`` command: the GUI when run plainly, every analysis headless as a subcommand.

Each command group lives in its own module with a ``register(subparsers)`` function. Errors
the user can fix (:class:`~workbench.errors.UserError`) print one line and exit with code 2.
Qt is imported only when the GUI is started.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from workbench.errors import UserError

#: Modules that contribute subcommands, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "workbench.cli.models_cmd",
    "workbench.cli.preimage_cmd",
    "workbench.cli.deform_cmd",
    "workbench.cli.filters_cmd",
    "workbench.cli.filtergan_cmd",
    "workbench.cli.runs_cmd",
    "workbench.cli.sweep_cmd",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad options as one line and exit code 2 (its own convention)."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"workbench: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description="CNN Workbench: look inside convolutional networks.")
    from workbench.version import __version__

    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    parser.add_argument("--selftest", action="store_true",
                        help="build the main window offscreen, run a 10-iteration inversion through the GUI worker, exit 0 if all is well")
    parser.add_argument("--model", default=None, help="model to open in the window (default: digits-vgg): a zoo "
                                                      "name, a model file, package.module:callable or timm:NAME")
    from workbench.config import add_options
    from workbench.config.model import ModelSpec

    add_options(parser, ModelSpec, skip=("model",))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that command group is not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; SIGINT and SIGTERM stop it like a cancel (exit 1, partial results kept); a
    second ends it at once (exit 130, ``workbench: stopped at once by a second SIGINT``). The outcome is
    decided when the command returns; a signal after that changes nothing. Run as the program
    (``argv`` None) the handler stays until the process exits (see :mod:`workbench.signals`)."""
    from workbench.jobs import Cancelled
    from workbench.signals import FORCED_EXIT, Forced, stop_signals_cancel

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return _gui(args)
        with stop_signals_cancel(for_life=argv is None) as stops:
            try:
                return int(args.func(args) or 0)
            finally:
                stops.settle()  # the outcome is decided: a later stop signal is counted, never raised
    except UserError as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Cancelled as exc:
        out = getattr(args, "out", None)
        kept = f"; the run folder {out} is kept and marked cancelled" if out and Path(out, "run.json").is_file() else ""
        print(f"workbench: {exc or 'cancelled'}{kept}", file=sys.stderr)
        return 1
    except Forced as exc:  # a second signal: the stop did not wait for the running work
        print(f"workbench: {exc}", file=sys.stderr)
        return FORCED_EXIT
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `workbench layers ... | head`: the reader left, nothing is wrong
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _gui(args: argparse.Namespace) -> int:
    try:
        app = importlib.import_module("workbench.ui.app")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("workbench.ui"):
            build_parser().print_help()
            return 0
        raise UserError(f"the GUI needs {exc.name}: install the project with pip install -e .") from None
    return app.main(model=_window_model(args), selftest=args.selftest)


def _window_model(args: argparse.Namespace):
    """The spec the window opens: ``--model`` and its options, or None for the default model."""
    from dataclasses import fields

    from workbench.config.model import ModelSpec

    given = {f.name: getattr(args, f.name) for f in fields(ModelSpec)
             if f.name != "model" and getattr(args, f.name, None) is not None}
    if args.model is None and not given:
        return None
    spec = ModelSpec(model=args.model or ModelSpec.model, **given)
    spec.validate()
    return spec
