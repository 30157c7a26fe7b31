"""``workbench sweep`` and ``workbench atlas``: grids of pre-image runs on the local, process or Ray executor."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from workbench.config import add_options
    from workbench.config.sweep import AtlasConfig, SweepConfig

    text = "a grid of pre-image runs (models × layers × C × seeds × images or channels), results.csv"
    p = sub.add_parser("sweep", help=text, description=text)
    add_options(p, SweepConfig)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_sweep)

    text = "maximize every selected channel of a layer: a contact sheet (atlas.png/pdf) and index.json"
    a = sub.add_parser("atlas", help=text, description=text)
    add_options(a, AtlasConfig)
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=_atlas)


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

    config = from_args(SweepConfig, args).resolved()
    config.validate()
    _check_out(config)
    return _report(drive(sweep_job(config), "sweep", quiet=args.quiet))


def _atlas(args: argparse.Namespace) -> int:
    from workbench.cli.common import drive
    from workbench.config import from_args
    from workbench.config.sweep import AtlasConfig
    from workbench.sweep.atlas import atlas_job

    config = from_args(AtlasConfig, args)
    config.sweep().validate()
    _check_out(config)
    result = drive(atlas_job(config), f"atlas {config.layer}", quiet=args.quiet)
    print(result.path / "atlas.png", file=sys.stderr)
    return _report(result)
