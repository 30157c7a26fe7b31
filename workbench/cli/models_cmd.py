"""``workbench layers`` and ``workbench zoo list|train``: what models there are and what is inside them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workbench.cli.common import add_device_option, add_model_options, drive, open_model


def register(subparsers) -> None:
    layers = subparsers.add_parser("layers", help="list a model's layers: shape, receptive field, stride")
    add_model_options(layers)
    layers.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    layers.set_defaults(func=_layers)

    zoo = subparsers.add_parser("zoo", help="the model zoo: list it, or retrain a bundled model")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    listing = zoo_sub.add_parser("list", help="print every named model")
    listing.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    listing.set_defaults(func=_zoo_list)
    train = zoo_sub.add_parser("train", help="train a digits model and write <name>.safetensors + <name>.json")
    train.add_argument("name", help="digits-vgg, digits-lenet5 or a cifar-vgg-* architecture")
    train.add_argument("--seed", type=int, default=0, help="seed of the init, batch order and shifts (default 0)")
    train.add_argument("--epochs", type=int, default=None, help="default: the model's recipe")
    train.add_argument("--random-labels", action="store_true",
                       help="train on shuffled labels (Ruderman et al. sect. 5); written as <name>-random-labels")
    train.add_argument("--out", default=None,
                       help="folder for the weights (default: the user's data folder, which the zoo reads first)")
    train.add_argument("--limit", type=int, default=None,
                       help="train on the first N training images only (a quick check, not a zoo model)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_option(train)
    train.set_defaults(func=_zoo_train)
    zoo.set_defaults(func=lambda args: _zoo_help(zoo))


def _zoo_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def _layers(args: argparse.Namespace) -> int:
    model = open_model(args, device="cpu")
    if model.notice:
        print(f"workbench: warning: {model.notice}", file=sys.stderr)
    layers = model.layers()
    if args.json:
        print(json.dumps([{"index": l.index, "name": l.name, "alias": l.alias, "kind": l.kind, "shape": list(l.shape),
                           "rf_size": l.rf_size, "stride": l.stride} for l in layers], indent=1))
        return 0
    rows = [("#", "name", "alias", "kind", "shape", "rf", "stride")]
    rows += [(str(l.index), l.name, l.alias or "", l.kind, "x".join(map(str, l.shape)), str(l.rf_size), str(l.stride))
             for l in layers]
    print(_table(rows, right={0, 5, 6}))
    return 0


def _table(rows: list[tuple[str, ...]], right: set[int] = frozenset()) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    return "\n".join(lines)


def _zoo_list(args: argparse.Namespace) -> int:
    from workbench.models import zoo_entries

    entries = zoo_entries()
    if args.json:
        print(json.dumps([{"name": e.name, "kind": e.kind, "trained": e.trained, "description": e.description,
                           "weights": e.weights, "input_size": list(e.input_size)} for e in entries], indent=1))
        return 0
    rows = [("name", "kind", "trained", "description")]
    rows += [(e.name, e.kind, "yes" if e.trained else "no", e.description) for e in entries]
    print(_table(rows))
    return 0


def _zoo_train(args: argparse.Namespace) -> int:
    from workbench import limits
    from workbench.device import resolve_device
    from workbench.errors import UserError
    from workbench.models.zoo import train_zoo_model
    from workbench.resources import user_models_dir

    limits.seed("--seed", args.seed)
    if args.epochs is not None:
        limits.integer("--epochs", args.epochs, 1, 10_000)
    train_data = None
    if args.limit is not None:
        from workbench.data.digits import load_digits32

        limits.integer("--limit", args.limit, 1)
        x, y = load_digits32("train")
        train_data = (x[:args.limit], y[:args.limit])
    existing = _check_destination(Path(args.out)) if args.out is not None else None
    device = resolve_device(args.device)
    try:
        result = drive(train_zoo_model(args.name, seed=args.seed, epochs=args.epochs, random_labels=args.random_labels,
                                       out=args.out, device=device, train_data=train_data),
                       f"train {args.name}", quiet=args.quiet)
    except BaseException as exc:
        if existing is not None:
            _remove_empty_folders(Path(args.out), existing)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write the weights to {args.out or user_models_dir()}: "
                            f"{exc.strerror or exc}; choose a folder you can write") from None
        raise
    print(json.dumps({k: result[k] for k in ("path", "test_accuracy", "train_accuracy", "epochs", "seed",
                                             "training_seconds")}))
    return 0


def _check_destination(out: Path) -> Path | None:
    """The nearest existing folder at or above ``out``; nothing on the way to ``out`` may be a file."""
    from workbench.errors import UserError

    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise UserError(f"--out {out}: {folder} is a file, not a folder; give a folder for the weights")
            return folder
    return None


def _remove_empty_folders(out: Path, existing: Path) -> None:
    """Undo the folders a failed write made between ``existing`` and ``out``."""
    for folder in (out, *out.parents):
        if folder == existing:
            return
        try:
            folder.rmdir()
        except OSError:
            return
