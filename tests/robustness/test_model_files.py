"""Nothing exhausts the machine through a model file (issue 17): a device, a FIFO or any other
non-regular file is refused at once (before a byte is read), model-file reads are capped by the
memory they would need, and a tiny ONNX graph that grows its own constants (Range,
ConstantOfShape, Tile over scalar constants) is refused from its inputs, before anything is folded
or run, with the limit in the message."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from workbench.cli import main
from workbench.config.model import ModelSpec
from workbench.errors import UserError
from workbench.models import load_model
from workbench.resources import resource_path

VGG = resource_path("models", "digits-vgg.safetensors")
posix = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")


def _one_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "model.pt"
    os.mkfifo(path)
    return path


@posix
@pytest.mark.parametrize("argv, message", [
    (["--model", "/dev/zero"], "model file /dev/zero is a device, not a regular file: refused"),
    (["--model", "FIFO"], "is a FIFO, not a regular file: refused"),
    (["--model", "digits-vgg", "--weights", "/dev/zero"], "--weights /dev/zero is a device, not a regular file"),
    (["--model", "digits-vgg", "--weights", "FIFO"], "is a FIFO, not a regular file"),
    (["--model", "LINK"], "is a device, not a regular file"),
    (["--model", "digits-vgg", "--class-names", "FIFO"], "is not a regular file (a FIFO or a device)"),
])
def test_non_regular_model_files_are_refused_at_once(capsys, tmp_path, fifo, argv, message):
    link = tmp_path / "zero.safetensors"
    link.symlink_to("/dev/zero")
    argv = [{"FIFO": str(fifo), "LINK": str(link)}.get(a, a) for a in argv]
    err = _one_line(capsys, ["layers", *argv])  # a FIFO would block forever, /dev/zero read until MemoryError
    assert message in err


@posix
def test_a_run_folder_naming_dev_zero_is_refused_as_the_command_line_is():
    with pytest.raises(UserError, match="is a device, not a regular file"):
        load_model(ModelSpec("/dev/zero"), imports=False)  # as a spec read from run.json is opened


def test_model_file_reads_are_capped_by_memory(capsys, monkeypatch):
    from workbench import limits

    monkeypatch.setattr(limits, "available_memory", lambda device=None: (100_000, "test memory"))
    err = _one_line(capsys, ["layers", "--model", str(VGG)])
    assert f"reading model file {VGG.name} ({VGG.stat().st_size:,} bytes) would need" in err
    assert "80 % of the test memory" in err


def _bomb(path, kind: str, n: int):
    onnx = pytest.importorskip("onnx", reason="the extra [onnx] is not installed")
    from onnx import TensorProto, helper, numpy_helper

    if kind == "Range":
        inits = [numpy_helper.from_array(np.array(v, np.int64), name) for v, name in ((0, "s"), (n, "l"), (1, "d"))]
        node = helper.make_node("Range", ["s", "l", "d"], ["r"])
    elif kind == "ConstantOfShape":
        inits = [numpy_helper.from_array(np.array([n], np.int64), "shape")]
        node = helper.make_node("ConstantOfShape", ["shape"], ["r"])
    else:
        inits = [numpy_helper.from_array(np.ones(4, np.float32), "t"), numpy_helper.from_array(np.array([n], np.int64), "k")]
        node = helper.make_node("Tile", ["t", "k"], ["r"])
    nodes = [node, helper.make_node("Cast", ["r"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceSum", ["f"], ["total"], keepdims=0), helper.make_node("Add", ["x", "total"], ["y"])]
    graph = helper.make_graph(nodes, "bomb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("kind", ["Range", "ConstantOfShape", "Tile"])
def test_an_onnx_constant_bomb_is_refused_before_folding(capsys, tmp_path, kind):
    pytest.importorskip("onnx2torch", reason="the extra [onnx] is not installed")
    path = _bomb(tmp_path / f"{kind}.onnx", kind, 10**12)  # 8 TB if it were ever computed
    assert path.stat().st_size < 400
    err = _one_line(capsys, ["layers", "--model", str(path)])
    values = 4 * 10**12 if kind == "Tile" else 10**12
    assert f"({kind}) would make a tensor of {values:,} values from constants, over the limit of 16,777,216" in err


def test_a_small_constant_graph_still_opens(tmp_path):
    pytest.importorskip("onnx2torch", reason="the extra [onnx] is not installed")
    import torch

    model = load_model(ModelSpec(str(_bomb(tmp_path / "small.onnx", "Range", 100))))
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.module(x), x + sum(range(100)))  # Range(0, 100) folded and summed
    assert json.loads(json.dumps(model.facts()))["trained"]
