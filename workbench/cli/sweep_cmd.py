"""``workbench sweep`` and ``workbench atlas``: grids of pre-image runs on the local, process or Ray executor.

Both take the one model option group (:func:`workbench.cli.common.add_model_options`: ``--model`` and
ModelSpec's options, ``--trust``). Consent is every command's: a spec typed here may import the
code it names; with ``--resume`` and no model typed, the sweep goes on with the spec its folder
records, which imports code (a package.module:callable) or opens a code file only with ``--trust``;
the grid's other options left out are then the folder's too (an option typed changes it).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from workbench.errors import UserError

SWEEP_MODEL = ("the models, comma-separated: zoo names, model files, package.module:callable or timm:NAME "
               "(default digits-vgg; with --resume, those the folder records); the options below apply to each")
ATLAS_MODEL = ("the model: a zoo name, a model file, package.module:callable or timm:NAME (default digits-vgg; "
               "with --resume, the one the folder records)")
DEFAULT_MODEL = "digits-vgg"


def register(sub: argparse._SubParsersAction) -> None:
    from workbench.cli.common import add_model_options
    from workbench.config import add_options
    from workbench.config.sweep import AtlasConfig, SweepConfig

    text = "a grid of pre-image runs (models × layers × C × seeds × images or channels), results.csv"
    p = sub.add_parser("sweep", help=text, description=text)
    add_model_options(p, model_help=SWEEP_MODEL, flags=("--model", "--models"))
    add_options(p, SweepConfig, skip=("models",), given_only=True)  # a resumed sweep keeps what is left out
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_sweep)

    text = "maximize every selected channel of a layer: a contact sheet (atlas.png/pdf) and index.json"
    a = sub.add_parser("atlas", help=text, description=text)
    add_model_options(a, model_help=ATLAS_MODEL)
    add_options(a, AtlasConfig, skip=("model",), given_only=True)
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=_atlas)


def model_group(args: argparse.Namespace, *, several: bool):
    """(model names, their shared ModelSpec options, ``imports``, the folder's SweepConfig or None) the
    command line gives: the typed ``--model`` and options (consent to import what they name), or on
    ``--resume`` with none typed the spec the sweep folder records (``imports`` False: code loads only
    with ``--trust``)."""
    from workbench.config import from_args
    from workbench.config.model import ModelSpec
    from workbench.config.sweep import model_specs, options_of

    options = options_of(from_args(ModelSpec, args, model=args.model or DEFAULT_MODEL))
    if args.model is None:
        names: tuple[str, ...] = (DEFAULT_MODEL,)
    elif several:
        names = tuple(n for n in args.model.replace(" ", ",").split(",") if n)
    else:
        names = (args.model,)
    typed = args.model is not None or options is not None
    try:
        recorded = _recorded(args.out) if getattr(args, "resume", False) else None
    except UserError:
        if not typed:  # nothing else names the model
            raise
        recorded = None  # the typed spec and options are the grid, as for a new sweep
    if recorded is None:
        return names, options, True, None
    if not typed:
        return recorded.models, recorded.model_options, False, recorded
    if model_specs(names, options) != recorded.model_specs():
        raise UserError(f"{args.out} sweeps {', '.join(recorded.models)} with other model options: resume it with "
                        f"no --model (its own spec; add --trust if it names code) or with the same --model and options")
    return names, options, True, recorded


def _typed(cls, args: argparse.Namespace) -> dict:
    """The fields of ``cls`` typed on the command line (options left out are absent: given_only)."""
    from dataclasses import fields

    return {f.name: tuple(v) if isinstance(v := getattr(args, f.name), list) else v
            for f in fields(cls) if hasattr(args, f.name) and f.name not in ("model", "models")}


def _recorded(out: str | None):
    """The SweepConfig a sweep folder's run.json records (None without one: a new sweep)."""
    from workbench.config import from_dict
    from workbench.config.sweep import SweepConfig
    from workbench.runs import RunStore

    if not out or not (Path(out).expanduser() / "run.json").is_file():
        return None
    folder = Path(out).expanduser()
    info = RunStore(folder.parent).open(folder).info  # a received folder: read like any other
    if info.get("kind") != "sweep" or not isinstance(info.get("config"), dict):
        return None  # sweep_job says what it is
    return from_dict(SweepConfig, info["config"])


def _consent(job, out: str, models: tuple[str, ...], imports: bool):
    """``job``; a refusal to load code that the folder ``out`` names says which folder and which option."""
    from workbench.models import NeedsTrust

    try:
        return (yield from job)
    except NeedsTrust as exc:
        if imports:
            raise
        what = {"callable": "Python code to import", "TorchScript": "a TorchScript archive",
                "pickle": "a full pickle"}.get(exc.kind, "code")
        raise UserError(f"{out} records the model {', '.join(models)}, {what}, which runs code when loaded: "
                        f"pass --trust to resume it, only if you trust that folder") from None


def _atlas_of(sweep) -> dict:
    """The AtlasConfig fields an atlas folder's SweepConfig (:meth:`AtlasConfig.sweep`) records."""
    from dataclasses import fields

    from workbench.config.sweep import AtlasConfig

    names = {f.name for f in fields(AtlasConfig)} - {"model", "model_options", "layer", "seed"}
    return {**{k: getattr(sweep, k) for k in names}, "layer": sweep.layers[0], "seed": sweep.seeds[0]}


def _check_out(config) -> None:
    from workbench.runs import check_new_folder

    if not config.resume:
        check_new_folder(config.out)


def _report(result) -> int:
    print(json.dumps({"sweep": str(result.path), "cells": len(result.rows), "ran": result.ran,
                      "skipped": result.skipped, **result.counts}))
    if result.counts.get("failed"):
        print(f"workbench: {result.counts['failed']} cell(s) failed: see the error column of "
              f"{result.path / 'results.csv'}", file=sys.stderr)
        return 1
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from workbench.cli.common import drive
    from workbench.config import from_args
    from workbench.config.sweep import SweepConfig
    from workbench.sweep.job import sweep_job

    models, options, imports, recorded = model_group(args, several=True)
    if recorded is None:
        config = from_args(SweepConfig, args, models=models, model_options=options)
    else:  # the folder's grid, with what the command line changes
        config = replace(recorded, **_typed(SweepConfig, args), models=models, model_options=options)
    config = config.resolved()
    config.validate()
    _check_out(config)
    job = sweep_job(config, trust=args.trust, imports=imports)
    return _report(drive(_consent(job, config.out, config.models, imports), "sweep", quiet=args.quiet))


def _atlas(args: argparse.Namespace) -> int:
    from workbench.cli.common import drive
    from workbench.config import from_args
    from workbench.config.sweep import AtlasConfig
    from workbench.sweep.atlas import atlas_job

    models, options, imports, recorded = model_group(args, several=False)
    base = {} if recorded is None else _atlas_of(recorded)
    config = AtlasConfig(**{**base, **_typed(AtlasConfig, args), "model": models[0], "model_options": options})
    config.sweep().validate()
    _check_out(config)
    job = atlas_job(config, trust=args.trust, imports=imports)
    result = drive(_consent(job, config.out, (config.model,), imports), f"atlas {config.layer}", quiet=args.quiet)
    print(result.path / "atlas.png", file=sys.stderr)
    return _report(result)
