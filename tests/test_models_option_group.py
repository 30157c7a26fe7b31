"""One model option group (issue 18, item 5): every command that opens a model the user names
takes all of ModelSpec's options and --trust, from the same declaration
(``cli.common.add_model_options``), and gives the same spec."""

from __future__ import annotations

import argparse

import pytest

from workbench.cli import build_parser
from workbench.cli.common import model_spec
from workbench.config.model import ModelSpec

#: (command path, extra arguments it needs). sweep and atlas take a list of model names, study trains
#: its own networks, filtergan eval/traverse reopen the model their run folder names (with --trust).
COMMANDS = [(("layers",), []), (("invert",), ["--layer", "relu1"]), (("maximize",), ["--layer", "relu1"]),
            (("caricature",), ["--layer", "relu1"]), (("deform",), []), (("smoothness",), []),
            (("filtergan", "train"), ["--layer", "conv1"]), (("demo",), [])]

GROUP = ["--model", "pkg.nets:Net", "--model-kwargs", '{"width": 3}', "--weights", "w.pt", "--input-size", "3x48x40",
         "--mean", "0.5,0.4,0.3", "--std", "0.2,0.2,0.25", "--class-names", "names.txt", "--path", "lib", "--trust"]


def _sub(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


@pytest.mark.parametrize("path, extra", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_model_command_takes_the_whole_group(path, extra):
    args = _sub(build_parser(), path).parse_args(GROUP + extra)
    assert model_spec(args) == ModelSpec("pkg.nets:Net", None, "w.pt", '{"width": 3}', (3, 48, 40), (0.5, 0.4, 0.3),
                                         (0.2, 0.2, 0.25), "names.txt", None, "lib")
    assert args.trust is True


@pytest.mark.parametrize("path, extra", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_the_group_has_one_help_per_option(path, extra):
    parser = _sub(build_parser(), path)
    flags = {flag: action.help for action in parser._actions for flag in action.option_strings}
    for flag in ("--model", "--weights", "--model-kwargs", "--input-size", "--mean", "--std", "--class-names",
                 "--path", "--trust", "--arch"):
        assert flags.get(flag), f"{' '.join(path)} lacks {flag}"
    reference = {flag: help for flag, help in
                 ((f, a.help) for a in _sub(build_parser(), ("layers",))._actions for f in a.option_strings)}
    for flag in ("--weights", "--model-kwargs", "--input-size", "--path", "--trust"):
        assert flags[flag] == reference[flag], f"{' '.join(path)}: {flag} is declared twice"
