"""One model option group (issue 18, item 5): every command that opens a model the user names
takes all of ModelSpec's options and --trust, from the same declaration
(``cli.common.add_model_options``), and gives the same spec; a sweep of a package.module:callable
records it in each cell, runs it on the local and process executors, and resumes it only with --trust."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from workbench.cli import build_parser
from workbench.cli.common import model_spec
from workbench.config.model import ModelSpec

#: (command path, extra arguments it needs). study trains its own networks, filtergan eval/traverse
#: reopen the model their run folder names (with --trust).
COMMANDS = [(("layers",), []), (("invert",), ["--layer", "relu1"]), (("maximize",), ["--layer", "relu1"]),
            (("caricature",), ["--layer", "relu1"]), (("deform",), []), (("smoothness",), []),
            (("filtergan", "train"), ["--layer", "conv1"]), (("demo",), []), (("sweep",), ["--out", "d"]),
            (("atlas",), ["--layer", "relu1", "--out", "d"])]

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


# --- sweeps of a package.module:callable ---------------------------------------------------------

TESTS = Path(__file__).resolve().parent
TWO_HEADS = "fixtures_models.nets:TwoHeads"
#: A callable with the whole group: --path (its package is under tests/), --model-kwargs, --input-size.
CALLABLE = ["--model", TWO_HEADS, "--path", str(TESTS), "--model-kwargs", '{"width": 4}', "--input-size", "3x16x16"]
SPEC = ModelSpec(TWO_HEADS, model_kwargs='{"width": 4}', input_size=(3, 16, 16), path=str(TESTS))
TINY = ["--layers", "relu", "--iters", "3", "--fine-tune", "0", "--device", "cpu", "--quiet"]


def _cells(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*/run.json"))]


def test_a_sweep_of_a_callable_runs_locally_records_its_spec_and_resumes_only_with_trust(tmp_path, capsys):
    from workbench.cli import main
    from workbench.config import from_dict, to_dict

    out = tmp_path / "sweep"
    assert main(["sweep", *CALLABLE, *TINY, "--images", "digits:0-1", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["done"] == 2
    cells = _cells(out)
    assert [c["status"] for c in cells] == ["done", "done"]
    for cell in cells:  # what Runs → Reopen opens: the whole spec, not the bare callable name
        assert from_dict(ModelSpec, cell["model"]["spec"]) == SPEC
    recorded = json.loads((out / "run.json").read_text())["config"]
    assert recorded["models"] == [TWO_HEADS] and recorded["model_options"] == json.loads(json.dumps(
        {k: v for k, v in to_dict(SPEC).items() if k != "model" and v is not None}))

    second = sorted((out / "cells").glob("*/run.json"))[1]
    info = json.loads(second.read_text())
    second.write_text(json.dumps({**info, "status": "failed"}))  # an unfinished cell to resume
    assert main(["sweep", "--resume", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and "--trust" in err and TWO_HEADS in err, err
    assert [c["status"] for c in _cells(out)] == ["done", "failed"]  # refused before any cell ran

    assert main(["sweep", "--resume", "--trust", "--out", str(out), "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ran"], report["skipped"], report["done"]) == (1, 1, 2)  # the folder's grid, its model
    assert [c["status"] for c in _cells(out)] == ["done", "done"]
    assert from_dict(ModelSpec, _cells(out)[1]["model"]["spec"]) == SPEC

    # typed again on the command line it is the user's consent; another spec is refused
    assert main(["sweep", "--resume", *CALLABLE, *TINY, "--images", "digits:0-1", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == 2
    assert main(["sweep", "--resume", "--model", "digits-vgg", "--out", str(out), "--quiet"]) == 2
    assert "--model" in capsys.readouterr().err


def test_a_sweep_cell_of_a_callable_reopens_with_its_spec_in_the_window(tmp_path, capsys):
    from workbench.cli import main
    from workbench.preview.models import run_model_spec

    out = tmp_path / "atlas"
    assert main(["atlas", *CALLABLE, "--layer", "conv", "--channels", "0", "--iters", "3", "--device", "cpu",
                 "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    (cell,) = (out / "cells").iterdir()
    spec, warning = run_model_spec(cell)  # Runs → Reopen's path: the spec, then the consent question
    assert (spec, warning) == (SPEC, None)


def test_a_sweep_of_a_callable_runs_in_worker_processes_with_the_same_numbers(tmp_path, capsys):
    from workbench.cli import main

    runs = {}
    for executor in ("local", "process"):
        out = tmp_path / executor
        assert main(["sweep", *CALLABLE, *TINY, "--images", "digits:0", "--executor", executor, "--workers", "1",
                     "--out", str(out)]) == 0
        assert json.loads(capsys.readouterr().out)["done"] == 1
        (cell,) = (out / "cells").iterdir()
        assert from_dict_spec(cell) == SPEC  # the spec travelled to the worker
        runs[executor] = json.loads((cell / "metrics.json").read_text())["reconstruction_error"]
    assert runs["process"] == runs["local"] and 0.0 < runs["local"][0] < 2.0


def from_dict_spec(cell: Path) -> ModelSpec:
    from workbench.config import from_dict

    return from_dict(ModelSpec, json.loads((cell / "run.json").read_text())["model"]["spec"])
