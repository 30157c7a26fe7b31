"""ONNX files through onnx2torch, and timm models with weights only from the local cache.

The ONNX tests export torchvision networks with torch's legacy exporter (the files that had onnx2torch
fail on deduplicated weights), read them back and compare numbers with the torch original: outputs,
receptive fields and strides of the layer table, truncated features."""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from workbench.errors import UserError
from workbench.models.external import ONNX_EXTRA, TIMM_EXTRA, hub_cache_dir, read_onnx, timm_model
from workbench.models.graph import layer_table
from workbench.models.truncate import truncate

SIZE = 64


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def _export(module: nn.Module, x: torch.Tensor, path: Path, **kwargs) -> Path:
    """torch's legacy (TorchScript) exporter at opset 17, its chatter silenced."""
    module.eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, x, str(path), opset_version=17, dynamo=False, **kwargs)
    return path


def _randomize_batch_norms(module: nn.Module, seed: int, only: str = "") -> None:
    """Running statistics and affine parameters far from identity, so a folded batch norm shows
    (only in modules whose name starts with ``only``)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in module.named_modules():
            if isinstance(m, nn.BatchNorm2d) and name.startswith(only):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)


@pytest.fixture(scope="module")
def resnet18_onnx(tmp_path_factory):
    """A random-init torchvision resnet18 and its legacy ONNX export at 64x64. The batch norms of
    layer2 are randomized; the others fold into identical zero biases, which the exporter writes
    once, with Identity nodes for the rest (what made onnx2torch fail with KeyError 'onnx::Conv_...')."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torchvision.models.resnet18().eval()
    _randomize_batch_norms(net, 1, only="layer2")
    path = _export(net, torch.zeros(1, 3, SIZE, SIZE), tmp_path_factory.mktemp("onnx") / "resnet18.onnx")
    return net, path


@pytest.fixture(scope="module")
def resnet18_read(resnet18_onnx):
    net, path = resnet18_onnx
    return net, read_onnx(path)


def _inputs(n: int, seed: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_legacy_export_has_the_identity_weights_that_broke_onnx2torch(resnet18_onnx):
    """The file is the problem case: Identity nodes standing for deduplicated initializers."""
    import onnx

    model = onnx.load(str(resnet18_onnx[1]))
    inits = {t.name for t in model.graph.initializer}
    assert any(n.op_type == "Identity" and n.input[0] in inits for n in model.graph.node)


def test_onnx_outputs_match_torch_at_any_batch(resnet18_read):
    net, module = resnet18_read
    assert module.input_size == (3, SIZE, SIZE)
    assert not module.training
    for n in (1, 3):  # exported at batch 1
        x = _inputs(n)
        with torch.no_grad():
            diff = (module(x) - net(x)).abs().max().item()
        assert diff < 1e-4, f"batch {n}: max abs diff {diff}"


def test_onnx_layer_table_matches_torch(resnet18_read):
    """Convolutions and pools: the torch original's names, receptive fields, strides and shapes.
    The exporter folded each batch norm into its convolution, so the bn rows are gone."""
    net, module = resnet18_read
    ours = layer_table(module, (3, SIZE, SIZE))
    theirs = layer_table(net, (3, SIZE, SIZE))

    def rows(table, kinds):
        return [(r.name, r.rf_size, r.stride, r.shape) for r in table if r.kind in kinds]

    convs = rows(ours, {"Conv2d"})
    assert len(convs) == 20
    assert convs == rows(theirs, {"Conv2d"})
    assert rows(ours, {"MaxPool2d", "AdaptiveAvgPool2d", "add", "flatten", "Linear"}) == \
        rows(theirs, {"MaxPool2d", "AdaptiveAvgPool2d", "add", "flatten", "Linear"})
    assert {r.name for r in ours} == {r.name for r in theirs if r.kind != "BatchNorm2d"}
    assert convs[0] == ("conv1", 7, 2, (64, SIZE // 2, SIZE // 2))
    avgpool = next(r for r in ours if r.name == "avgpool")
    assert avgpool.rf_size > next(r for r in ours if r.name == "layer4.1.relu_1").rf_size  # sees the whole map


def test_onnx_truncation_matches_torch_feature(resnet18_read):
    net, module = resnet18_read
    x = _inputs(2)
    with torch.no_grad():
        # a convolution with its batch norm folded in computes what the torch bn computes
        for ours, theirs in (("layer2.0.conv1", "layer2.0.bn1"), ("layer3.1.add", "layer3.1.add"),
                             ("layer4.0.downsample.0", "layer4.0.downsample.1")):
            a, b = truncate(module, ours)(x), truncate(net, theirs)(x)
            assert a.shape == b.shape
            assert (a - b).abs().max().item() < 1e-4, ours
        folded = truncate(module, "layer2.0.conv1")(x)
        plain = truncate(net, "layer2.0.conv1")(x)
        assert (folded - plain).abs().max().item() > 1e-2  # the bn really was folded (randomized stats)


def test_onnx_sequential_vgg_features(tmp_path):
    """vgg11's conv/pool stack: names as torch's (0, 1, 2 ...), receptive fields and strides equal."""
    import torchvision

    pytest.importorskip("onnx2torch")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torchvision.models.vgg11().features[:11].eval()  # through conv4_1: 3 pools, 5 convs
    path = _export(net, torch.zeros(1, 3, SIZE, SIZE), tmp_path / "vgg.onnx")
    module = read_onnx(path)
    x = _inputs(1)
    with torch.no_grad():
        assert (module(x) - net(x)).abs().max().item() < 1e-4
    ours = [(r.name, r.kind, r.rf_size, r.stride) for r in layer_table(module, (3, SIZE, SIZE))]
    theirs = [(r.name, r.kind, r.rf_size, r.stride) for r in layer_table(net, (3, SIZE, SIZE))]
    assert ours == theirs
    # by hand, r_out = r_in + (k - 1) j_in, j_out = j_in s: 3, 4 (pool), 8, 10 (pool), 18, 26, 30 (pool)
    assert [r for r in ours if r[1] != "ReLU"] == [("0", "Conv2d", 3, 1), ("2", "MaxPool2d", 4, 2), ("3", "Conv2d", 8, 2),
                                                   ("5", "MaxPool2d", 10, 4), ("6", "Conv2d", 18, 4),
                                                   ("8", "Conv2d", 26, 4), ("10", "MaxPool2d", 30, 8)]


def test_opset_20_model_is_converted_down(tmp_path):
    """Operators onnx2torch lacks at opset 20 (Reshape-19, ReduceMean-18): converted to opset 17 and
    rewritten; a Reshape that keeps the exported batch of 1 then keeps any batch."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/features/conv/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="/features/relu/Relu"),
             helper.make_node("ReduceMean", ["r", "axes"], ["pooled"], name="/pool/ReduceMean", keepdims=1),
             helper.make_node("Reshape", ["pooled", "shape"], ["y"], name="/Reshape", allowzero=1)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 2])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([1, 2, 2], np.int64), "shape"),
         numpy_helper.from_array(np.array([2, 3], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    path = tmp_path / "opset20.onnx"
    onnx.save(model, str(path))
    module = read_onnx(path)
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = torch.relu(nn.functional.conv2d(x, torch.from_numpy(w), padding=1)).mean((2, 3)).reshape(3, 2, 2)
    with torch.no_grad():
        assert (module(x) - expected).abs().max().item() < 1e-5
    table = {r.name: r for r in layer_table(module, (3, 8, 8))}
    assert table["features.conv"].kind == "Conv2d" and table["features.conv"].rf_size == 3
    assert table["pool"].kind == "AdaptiveAvgPool2d" and table["pool"].rf_size == 10


class _ViewNet(nn.Module):
    """Shape arithmetic at run time: a channel split by x.size(1) and x.view(x.size(0), -1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn(self.conv(x))))
        c = x.size(1) // 2
        x = torch.cat([x[:, :c] * 2, x[:, c:]], 1)
        return self.fc(x.view(x.size(0), -1))


def test_dynamic_batch_export_with_shape_arithmetic(tmp_path):
    """Shape, Slice and Reshape computed at run time trace (onnx2torch's modules loop over proxies
    there); shape arithmetic gives no layer rows; the module pickles."""
    import pickle

    pytest.importorskip("onnx2torch")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = _ViewNet().eval()
    _randomize_batch_norms(net, 3)
    path = _export(net, torch.zeros(1, 3, 16, 16), tmp_path / "view.onnx", input_names=["x"],
                   dynamic_axes={"x": {0: "n"}})
    module = read_onnx(path)
    assert module.input_size == (3, 16, 16)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (module(x) - net(x)).abs().max().item() < 1e-4
        again = pickle.loads(pickle.dumps(module))
        assert torch.equal(again(x), module(x))
    rows = [(r.name, r.kind, r.rf_size, r.stride) for r in layer_table(module, (3, 16, 16))]
    assert rows == [("conv", "Conv2d", 3, 2), ("relu", "ReLU", 3, 2), ("pool", "MaxPool2d", 5, 4),
                    ("cat", "cat", 5, 4), ("fc", "Linear", 17, 4)]
    # torch lists no row for torch.relu (a function); the exporter made it a Relu node, a module here
    assert [(r.name, r.rf_size, r.stride) for r in layer_table(net, (3, 16, 16)) if r.kind != "BatchNorm2d"] == \
        [(name, rf, stride) for name, _, rf, stride in rows if name != "relu"]
    with torch.no_grad():
        assert (truncate(module, "cat")(x) - truncate(net, "cat")(x)).abs().max().item() < 1e-4


def _save(model, path: Path) -> Path:
    import onnx

    onnx.save(model, str(path))
    return path


def _tiny_model(op: str = "Relu", opset: int = 17, **attrs):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], name="the_op", **attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_unsupported_operator_is_one_line_naming_op_and_opset(tmp_path):
    pytest.importorskip("onnx2torch")
    path = _save(_tiny_model("Hardmax", 17), tmp_path / "hardmax.onnx")
    with pytest.raises(UserError) as exc:
        read_onnx(path)
    text = _one_line(exc)
    assert text.startswith("hardmax.onnx: ") and "Hardmax (opset 17" in text and "not supported by onnx2torch" in text
    assert "opset_version=17" in text


def test_operator_without_older_version_says_so(tmp_path):
    """Mish exists only from opset 18: converting down fails, and the message says why."""
    pytest.importorskip("onnx2torch")
    path = _save(_tiny_model("Mish", 18), tmp_path / "mish.onnx")
    with pytest.raises(UserError) as exc:
        read_onnx(path)
    text = _one_line(exc)
    assert "Mish (opset 18" in text and "converting the model to opset 17 failed" in text


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all\n" * 4, bytes(range(256)) * 8, b"\x08\x07"])
def test_damaged_or_foreign_file_is_one_line(tmp_path, content):
    pytest.importorskip("onnx2torch")
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    with pytest.raises(UserError) as exc:
        read_onnx(path)
    text = _one_line(exc)
    assert text.startswith("model.onnx") and ("ONNX" in text or "empty" in text)


def test_truncated_file_is_one_line(resnet18_onnx, tmp_path):
    data = resnet18_onnx[1].read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as exc:
        read_onnx(path)
    assert "cut.onnx is not a readable ONNX model" in _one_line(exc)


def test_missing_onnx_extra_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx2torch", None)  # import onnx2torch raises ImportError
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\x08\x08")
    with pytest.raises(UserError) as exc:
        read_onnx(path)
    assert _one_line(exc) == f"m.onnx: opening ONNX files needs the optional extra: {ONNX_EXTRA}"


def test_external_data_inside_the_folder_loads_and_outside_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnx2torch")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 6, 6])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.data", size_threshold=0)
    module = read_onnx(tmp_path / "ext.onnx")
    torch.testing.assert_close(module.conv.weight.detach(), torch.from_numpy(w), rtol=0, atol=0)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "ext.data").rename(outside / "ext.data")
    loaded = onnx.load(str(tmp_path / "ext.onnx"), load_external_data=False)
    for entry in loaded.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../elsewhere/ext.data"
    sub = tmp_path / "sub"
    sub.mkdir()
    onnx.save(loaded, str(sub / "evil.onnx"))
    with pytest.raises(UserError) as exc:
        read_onnx(sub / "evil.onnx")
    assert "evil.onnx: tensor 'w' is stored in external data '../elsewhere/ext.data'" in _one_line(exc)
    (sub / "link.data").symlink_to(outside / "ext.data")
    for entry in loaded.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "link.data"
    onnx.save(loaded, str(sub / "link.onnx"))
    with pytest.raises(UserError) as exc:
        read_onnx(sub / "link.onnx")
    assert "leads outside the model's folder" in _one_line(exc)


def test_read_onnx_leaves_the_global_rng_alone(resnet18_onnx):
    state = torch.random.get_rng_state()
    read_onnx(resnet18_onnx[1])
    assert torch.equal(state, torch.random.get_rng_state())


# --- timm --------------------------------------------------------------------------------------

@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache of our own: $HF_HOME/hub."""
    pytest.importorskip("timm")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    assert hub_cache_dir() == tmp_path / "hf" / "hub"
    return tmp_path / "hf" / "hub"


def _cache_weights(hub: Path, repo: str, state: dict[str, torch.Tensor]) -> Path:
    """``state`` as model.safetensors in the hub cache layout huggingface_hub writes."""
    from safetensors.torch import save_file

    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = hub / ("models--" + repo.replace("/", "--"))
    (folder / "snapshots" / commit).mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    path = folder / "snapshots" / commit / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_timm_without_cached_weights_is_untrained_with_notice(hub):
    state = torch.random.get_rng_state()
    module, trained, source, notice, size, mean, std = timm_model("resnet18", {})
    assert torch.equal(state, torch.random.get_rng_state())
    assert trained is False and source == "untrained (random init, seed 0)"
    assert notice == (f"timm:resnet18: no pretrained weights in {hub} (looked for models--timm--resnet18.a1_in1k/"
                      f"snapshots/<commit>/model.safetensors or pytorch_model.bin, as `hf download "
                      f"timm/resnet18.a1_in1k` puts it); the model is UNTRAINED (random init). "
                      f"Put the file there to use trained weights.")
    assert size == (3, 224, 224)
    assert mean == pytest.approx((0.485, 0.456, 0.406)) and std == pytest.approx((0.229, 0.224, 0.225))
    again = timm_model("resnet18", {})[0]
    assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), again.state_dict().values()))
    table = layer_table(module, (3, SIZE, SIZE))
    convs = [(r.name, r.rf_size, r.stride) for r in table if r.kind == "Conv2d"]
    assert convs[0] == ("conv1", 7, 2) and len(convs) == 20
    assert table[-1].name == "fc" and table[-1].shape == (1000,)


def test_timm_uses_weights_from_the_local_cache(hub):
    import timm

    with torch.random.fork_rng():
        torch.manual_seed(123)
        state = timm.create_model("resnet18").state_dict()
    path = _cache_weights(hub, "timm/resnet18.a1_in1k", state)
    module, trained, source, notice, *_ = timm_model("timm:resnet18", {})
    assert trained is True and source == str(path) and notice is None
    own = module.state_dict()
    assert own.keys() == state.keys()
    assert all(torch.equal(own[k], v) for k, v in state.items())
    assert "state_dict" not in module.pretrained_cfg

    module, trained, _, notice, *_ = timm_model("resnet18", {"num_classes": 10})
    assert trained is True and "the classifier (fc) is UNTRAINED" in notice
    assert module.fc.out_features == 10
    assert module(torch.zeros(1, 3, SIZE, SIZE)).shape == (1, 10)
    assert torch.equal(module.conv1.weight, state["conv1.weight"])


def test_timm_kwargs_change_the_head(hub):
    module, trained, *_ = timm_model("resnet18", {"num_classes": 10})
    assert trained is False and module.fc.out_features == 10
    assert layer_table(module, (3, SIZE, SIZE))[-1].shape == (10,)


def test_timm_errors_are_one_line(hub, monkeypatch):
    with pytest.raises(UserError) as exc:
        timm_model("resnet181", {})
    assert _one_line(exc).startswith("unknown timm model 'resnet181': did you mean resnet18")
    with pytest.raises(UserError) as exc:
        timm_model("resnet18", {"no_such_argument": 1})
    assert "timm:resnet18: timm rejects the arguments no_such_argument=1" in _one_line(exc)
    with pytest.raises(UserError) as exc:
        timm_model("resnet18", {"pretrained": True})
    assert "'pretrained' is not accepted" in _one_line(exc)
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(UserError) as exc:
        timm_model("resnet18", {})
    assert _one_line(exc) == f"timm:resnet18: timm models need the optional extra: {TIMM_EXTRA}"


def test_timm_damaged_cached_file_is_one_line(hub):
    path = _cache_weights(hub, "timm/resnet18.a1_in1k", {"x": torch.zeros(1)})
    path.write_bytes(b"garbage")
    with pytest.raises(UserError) as exc:
        timm_model("resnet18", {})
    assert f"the cached weights {path} are not a readable safetensors file" in _one_line(exc)
