"""One config per analysis: the CLI's options, the API's keywords and run.json follow the
dataclass, and the configs import no torch. (The window's side: tests/gui/test_config_window.py.)"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from workbench.config import add_options, defaults, from_dict, options, to_dict
from workbench.config.deformation import DeformConfig, SmoothnessConfig
from workbench.config.model import ModelSpec
from workbench.config.preimage import METHODS, PreimageConfig
from workbench.errors import UserError


def _parser(command: str):
    from workbench.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return sub.choices[command]


def _cli_fields(cls, method=None):
    return [f.name for f, meta in options(cls)
            if meta["cli"] and not (method and meta["methods"] and method not in meta["methods"])]


@pytest.mark.parametrize("method", METHODS)
def test_preimage_cli_defaults_are_the_configs(method):
    parser = _parser(method)
    args = parser.parse_args(["--model", "digits-vgg", "--layer", "relu1"])
    want = defaults(PreimageConfig)
    fields = _cli_fields(PreimageConfig, method)
    assert {"iters", "restarts", "seed", "alpha", "beta", "frame_every"} <= set(fields)
    for name in fields:
        if name == "layer":
            continue
        value = getattr(args, name)
        assert (list(value) if isinstance(value, tuple) else value) == want[name], name
    # options of the other methods are not offered
    offered = {a.dest for a in parser._actions}
    assert ("channel" in offered) == (method == "maximize")
    assert ("mask_window" in offered) == (method == "invert")
    assert ("image" in offered) == (method != "maximize")


def test_preimage_cli_help_is_the_fields_help():
    parser = _parser("invert")
    helps = {a.dest: a.help for a in parser._actions}
    want = {f.name: meta["help"] for f, meta in options(PreimageConfig)}
    for name in _cli_fields(PreimageConfig, "invert"):
        assert helps[name].startswith(want[name]), name


def test_the_cli_builds_the_same_config_the_api_does(tmp_path):
    from workbench.api import _config
    from workbench.cli.preimage_cmd import _config as cli_config

    argv = ["--model", "digits-vgg", "--layer", "relu2", "--channel", "3", "--neuron", "1", "2", "--iters", "7",
            "--restarts", "2", "-C", "3.5", "--frames", "0", "--seed", "9"]
    args = _parser("maximize").parse_args(argv)
    args.method = "maximize"
    from_cli = cli_config(args)
    from_api = _config(PreimageConfig, {"model": "digits-vgg", "layer": "relu2", "method": "maximize", "image": None,
                                        "channel": 3, "neuron": (1, 2), "iters": 7, "restarts": 2, "C": 3.5,
                                        "frame_every": 0, "seed": 9})
    assert from_cli == from_api
    assert from_dict(PreimageConfig, json.loads(json.dumps(to_dict(from_cli)))) == from_cli


def test_the_api_takes_every_config_field_and_nothing_else():
    from workbench.api import _config

    every = {f.name: f.default for f in dataclasses.fields(PreimageConfig)}
    assert _config(PreimageConfig, every) == PreimageConfig()
    with pytest.raises(UserError, match="did you mean iters"):
        _config(PreimageConfig, {"iter": 5})


def test_deform_and_smoothness_cli_defaults_are_the_configs():
    args = _parser("deform").parse_args(["--model", "digits-vgg"])
    want = defaults(DeformConfig)
    for name in _cli_fields(DeformConfig):
        value = getattr(args, name)
        assert (list(value) if isinstance(value, tuple) else value) == want[name], name
    args = _parser("deform").parse_args(["--model", "m", "--layers", "relu1,relu2 conv3"])
    assert args.layers == ("relu1", "relu2", "conv3")
    args = _parser("smoothness").parse_args(["--model", "digits-vgg"])
    assert (args.init, args.seed) == (SmoothnessConfig().init, SmoothnessConfig().seed)


@pytest.mark.parametrize("command", ["invert", "maximize", "caricature", "deform", "smoothness", "layers"])
def test_every_model_command_takes_the_whole_model_spec(command):
    from workbench.cli.common import model_spec

    argv = ["--model", "pkg.nets:Net", "--model-kwargs", '{"width": 3}', "--weights", "w.pt", "--input-size",
            "3x48x40", "--mean", "0.5,0.4,0.3", "--std", "0.2,0.2,0.25", "--class-names", "names.txt"]
    if command in METHODS:
        argv += ["--layer", "relu1"]
    spec = model_spec(_parser(command).parse_args(argv))
    assert spec == ModelSpec("pkg.nets:Net", None, "w.pt", '{"width": 3}', (3, 48, 40), (0.5, 0.4, 0.3),
                             (0.2, 0.2, 0.25), "names.txt")
    assert spec.kind == "callable" and spec.kwargs() == {"width": 3}


@pytest.mark.parametrize("argv, message", [
    (["--input-size", "3x48"], "CxHxW"),
    (["--input-size", "3x0x4"], "out of range"),
    (["--mean", "0.5,x"], "comma-separated numbers"),
    (["--input-size", "3x8x8", "--mean", "0.5,0.5"], "one per channel"),
    (["--model-kwargs", "[1]"], "JSON object"),
    (["--std", "0,1,1"], "between 1e-6"),
])
def test_bad_model_options_are_one_line(argv, message, capsys):
    from workbench.cli import main

    try:
        code = main(["layers", "--model", "timm:resnet18", *argv])
    except SystemExit as exc:  # argparse's own error for a value it cannot parse
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_run_json_records_the_config_and_the_model_spec(tmp_path):
    from workbench import api

    result = api.invert("digits-vgg", "relu1", "digits:1", out=tmp_path / "run", iters=3, restarts=1, device="cpu",
                        fine_tune_iters=0)
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    config = from_dict(PreimageConfig, saved["config"])
    assert config == dataclasses.replace(PreimageConfig(), layer="relu1", image="digits:1", iters=3, restarts=1,
                                         device="cpu", fine_tune_iters=0)
    assert from_dict(ModelSpec, saved["model"]["spec"]) == ModelSpec("digits-vgg")
    assert result.images.shape == (1, 32, 32, 1)


def test_configs_import_no_torch():
    code = ("import argparse, sys\n"
            "from workbench.config import add_options, clean, defaults\n"
            "from workbench.config.preimage import PreimageConfig\n"
            "from workbench.config.deformation import DeformConfig\n"
            "from workbench.config.model import ModelSpec\n"
            "p = argparse.ArgumentParser(); add_options(p, ModelSpec); add_options(p, PreimageConfig)\n"
            "spec = ModelSpec('x.y:z', input_size=(3, 8, 8)); spec.validate()\n"
            "clean(PreimageConfig, {'iters': 3}); defaults(DeformConfig)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_clean_keeps_what_fits_and_names_the_rest():
    from workbench.config import clean

    kept, dropped = clean(PreimageConfig, {"iters": 12, "method": "paint", "C": float("inf"), "neuron": [1, 2],
                                           "restarts": 2**40, "alpha": 3, "nonsense": 1, "mask_channels": [1, "a"]})
    assert kept == {"iters": 12, "neuron": (1, 2), "alpha": 3.0}
    assert sorted(dropped) == ["C", "mask_channels", "method", "restarts"]


def test_filtergan_cli_follows_its_configs():
    from workbench.cli import build_parser
    from workbench.config.filtergan import FilterGanConfig, FilterGanEvalConfig, TraversalConfig

    parser = build_parser()
    args = parser.parse_args(["filtergan", "traverse"])
    for name in _cli_fields(TraversalConfig):
        value = getattr(args, name)
        assert (list(value) if isinstance(value, tuple) else value) == defaults(TraversalConfig)[name], name
    args = parser.parse_args(["filtergan", "eval", "RUN"])
    for name in _cli_fields(FilterGanEvalConfig):
        assert getattr(args, name) == defaults(FilterGanEvalConfig)[name], name
    # train: only what is given is set, so --resume keeps the saved values of the rest
    args = parser.parse_args(["filtergan", "train", "--model", "digits-vgg", "--layer", "conv3", "--steps", "5"])
    assert args.steps == 5 and not hasattr(args, "latent_dim") and not hasattr(args, "lr")
    offered = {a.dest for a in parser._subparsers._group_actions[0].choices["filtergan"]._subparsers
               ._group_actions[0].choices["train"]._actions}
    assert set(_cli_fields(FilterGanConfig)) <= offered
