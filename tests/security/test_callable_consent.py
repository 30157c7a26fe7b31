"""A run folder that names a Python callable never imports it without the user's consent.

The callable's module (tests/fixtures_models/sentinel.py) creates a marker file when imported;
the control proves the marker appears once the user passes --trust."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from workbench.cli import main
from workbench.config.model import ModelSpec
from workbench.resources import shipped_filtergan_run

CALLABLE = "tests.fixtures_models.sentinel:Net"


@pytest.fixture
def marker(tmp_path, monkeypatch):
    path = tmp_path / "imported"
    monkeypatch.setenv("WORKBENCH_TEST_SENTINEL", str(path))
    sys.modules.pop("tests.fixtures_models.sentinel", None)
    yield path
    sys.modules.pop("tests.fixtures_models.sentinel", None)


def _run_naming(tmp_path, with_spec: bool):
    run = tmp_path / "fg-run"
    shutil.copytree(shipped_filtergan_run(), run)
    info = json.loads((run / "run.json").read_text())
    info["config"]["model"] = CALLABLE
    if with_spec:
        info["model"] = {**(info.get("model") or {}), "spec": {**vars(ModelSpec(CALLABLE))}}
    (run / "run.json").write_text(json.dumps(info))
    return run


@pytest.mark.parametrize("with_spec", [False, True])
@pytest.mark.parametrize("command", ["traverse", "eval"])
def test_a_filtergan_run_naming_a_callable_imports_nothing_untrusted(capsys, marker, tmp_path, command, with_spec):
    run = _run_naming(tmp_path, with_spec)
    out = tmp_path / "out"
    argv = ["filtergan", command, str(run), "--out", str(out)] + (["--iters", "1"] if command == "traverse" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and CALLABLE in err[0] and "--trust" in err[0] and "importing it runs" in err[0]
    assert not marker.exists(), "the callable's module was imported"
    assert not out.exists()
    # the control: with the user's consent the module is imported (and the net, not a digits net, is refused)
    assert main(argv + ["--trust"]) == 2
    assert marker.exists()


def test_a_preimage_config_naming_a_callable_imports_nothing(marker, tmp_path):
    """A pre-image job opens no model (issue 21): whoever runs a config read from a file opens the model it
    names through the registry, without imports — here a sweep's cell, handed the spec without consent."""
    from workbench.config import to_dict
    from workbench.config.preimage import PreimageConfig
    from workbench.errors import UserError
    from workbench.sweep.cell import open_model, run_cell, task

    config = to_dict(PreimageConfig(model=CALLABLE, layer="0", image="digits:0", iters=1, restarts=1, device="cpu"))
    spec = to_dict(ModelSpec(CALLABLE, input_size=(3, 16, 16)))
    with pytest.raises(UserError, match="importing it runs"):
        run_cell(task(config, spec), str(tmp_path / "run"))
    assert not marker.exists()
    assert not (tmp_path / "run").exists()
    # the control: with the user's consent the cell's opener imports the module and opens the net
    assert type(open_model(spec, trust=True).module).__name__ == "Net"
    assert marker.exists()
