"""Loading: the bundled models, the torch hub cache, and the user's own files, never running their code."""

from __future__ import annotations

import builtins
import hashlib
import json

import pytest
import torch

import workbench.resources
from workbench.data import DIGITS_MEAN, DIGITS_STD, load_digits32
from workbench.errors import UserError
from workbench.models import LoadedModel, load_model, zoo
from workbench.models import architectures as A
from workbench.models.loading import NeedsTrust


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


class Malicious:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def _accuracy(model: LoadedModel) -> float:
    x, y = load_digits32("test")
    mean = torch.tensor(model.mean).view(1, -1, 1, 1)
    std = torch.tensor(model.std).view(1, -1, 1, 1)
    with torch.no_grad():
        return float((model.module((x - mean) / std).argmax(1) == y).float().mean())


@pytest.mark.parametrize("name,floor", [("digits-vgg", 0.97), ("digits-lenet5", 0.95)])
def test_bundled_models_are_trained_and_reach_their_accuracy(name, floor):
    model = load_model(name)
    assert model.trained and model.notice is None and model.dataset == "digits"
    assert model.source == f"bundled: resources/models/{name}.safetensors"
    assert model.input_size == (1, 32, 32) and model.mean == DIGITS_MEAN and model.std == DIGITS_STD
    assert model.class_names == [str(i) for i in range(10)] and model.has_classifier
    assert not model.module.training and all(not p.requires_grad for p in model.module.parameters())
    assert model.device == torch.device("cpu")
    accuracy = _accuracy(model)
    assert accuracy >= floor
    assert abs(accuracy - model.metadata["test_accuracy"]) < 1e-3
    assert {"seed", "epochs", "torch", "training_seconds"} <= set(model.metadata)


def test_bundled_model_without_weights_is_untrained_with_a_notice(tmp_path, monkeypatch):
    monkeypatch.setattr(workbench.resources, "resources_root", lambda: tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user"))
    model = load_model("digits-vgg")
    assert not model.trained and model.dataset is None
    assert "UNTRAINED" in model.notice and str(tmp_path / "models" / "digits-vgg.safetensors") in model.notice
    assert "workbench zoo train digits-vgg" in model.notice
    assert model.source == "untrained (random init, seed 0)"


def test_architecture_init_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = load_model("cifar-vgg-strided")
    after = torch.rand(3)
    b = load_model("cifar-vgg-strided")
    assert torch.equal(after, expected)
    for (ka, va), (kb, vb) in zip(a.module.state_dict().items(), b.module.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert not a.trained and "cifar-vgg-strided" in a.notice
    assert a.class_names == [str(i) for i in range(10)]


def test_torchvision_without_cached_weights_is_untrained_with_a_notice(hub):
    model = load_model("alexnet")
    assert not model.trained
    assert model.notice == (f"alexnet: no pretrained weights in {hub} (looked for alexnet-owt-7be5be79.pth); "
                            f"the model is UNTRAINED (random init). Put the file there to use trained weights.")
    assert model.input_size == (3, 224, 224) and model.mean == (0.485, 0.456, 0.406)
    assert len(model.class_names) == 1000 and model.class_names[0] == "tench"
    assert not any(hub.glob("*")), "nothing may be downloaded"


def _hashed_name(monkeypatch, path, stem="squeezenet1_1"):
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    monkeypatch.setattr(zoo, "torchvision_weights_url", lambda name: f"https://example.invalid/{stem}-{digest}.pth")
    return path.with_name(f"{stem}-{digest}.pth")


def test_cached_torchvision_weights_load_with_weights_only(hub, monkeypatch):
    hub.mkdir(parents=True)
    reference = zoo.build_architecture("squeezenet1_1", seed=7).state_dict()
    raw = hub / "raw.pth"
    torch.save(reference, raw)
    raw.rename(_hashed_name(monkeypatch, raw))
    model = load_model("squeezenet1_1")
    assert model.trained and model.notice is None and model.source.startswith(str(hub))
    for key, value in reference.items():
        assert torch.equal(model.module.state_dict()[key], value)


def test_crafted_cached_file_runs_no_code(hub, monkeypatch, tmp_path):
    marker = tmp_path / "pwned"
    hub.mkdir(parents=True)
    raw = hub / "raw.pth"
    torch.save({"features.0.weight": Malicious(marker)}, raw)
    # same name torchvision would use, wrong hash: refused before reading
    monkeypatch.setattr(zoo, "torchvision_weights_url", lambda name: "https://example.invalid/squeezenet1_1-0123abcd.pth")
    raw.rename(hub / "squeezenet1_1-0123abcd.pth")
    with pytest.raises(UserError, match="hash"):
        load_model("squeezenet1_1")
    # a name whose hash matches: torch.load(weights_only=True) refuses the pickle
    (hub / "squeezenet1_1-0123abcd.pth").rename(raw)
    raw.rename(_hashed_name(monkeypatch, raw))
    with pytest.raises(UserError) as err:
        load_model("squeezenet1_1")
    assert "\n" not in str(err.value)
    assert not marker.exists()


def _lenet_state(seed=3):
    return zoo.build_architecture("digits-lenet5", seed=seed).state_dict()


def _logits(model, seed=0):
    x = torch.randn(2, *model.input_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.module(x)


def test_safetensors_with_arch_in_metadata_or_option(tmp_path):
    from safetensors.torch import save_file

    state = _lenet_state()
    with_meta, bare = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file(state, str(with_meta), metadata={"arch": "digits-lenet5"})
    save_file(state, str(bare))
    a = load_model(str(with_meta))
    b = load_model(str(bare), arch="digits-lenet5")
    assert a.trained and a.input_size == (1, 32, 32) and a.name == str(with_meta)
    torch.testing.assert_close(_logits(a), _logits(b), rtol=0, atol=0)
    assert torch.equal(a.module.state_dict()["c1.weight"], state["c1.weight"])
    with pytest.raises(UserError, match="pass --arch"):
        load_model(str(bare))
    with pytest.raises(UserError, match="unknown architecture 'lenet'"):
        load_model(str(bare), arch="lenet")


def test_state_dict_file_wrapped_or_plain_and_mismatches(tmp_path):
    state = _lenet_state()
    plain, wrapped = tmp_path / "plain.pt", tmp_path / "wrapped.pth"
    torch.save(state, plain)
    torch.save({"state_dict": state, "epoch": 3}, wrapped)
    a = load_model(str(plain), arch="digits-lenet5")
    b = load_model(str(wrapped), arch="digits-lenet5")
    torch.testing.assert_close(_logits(a), _logits(b), rtol=0, atol=0)
    assert "state_dict" in a.source and "digits-lenet5" in a.source
    with pytest.raises(UserError, match="pass --arch"):
        load_model(str(plain))
    with pytest.raises(UserError) as err:
        load_model(str(plain), arch="digits-vgg")
    assert "does not fit architecture 'digits-vgg'" in str(err.value) and "missing" in str(err.value)
    bad = dict(state)
    bad["output.weight"] = torch.zeros(5, 84)
    torch.save(bad, tmp_path / "shape.pt")
    with pytest.raises(UserError, match="wrong shape"):
        load_model(str(tmp_path / "shape.pt"), arch="digits-lenet5")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated_corrupt_and_missing_files_are_one_line_errors(tmp_path, suffix):
    from safetensors.torch import save_file

    good = tmp_path / f"good{suffix}"
    if suffix == ".pt":
        torch.save(_lenet_state(), good)
    else:
        save_file(_lenet_state(), str(good))
    truncated = tmp_path / f"truncated{suffix}"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / f"garbage{suffix}"
    garbage.write_bytes(b"\x80\x02not a model at all" * 50)
    for path in (truncated, garbage):
        with pytest.raises(UserError) as err:
            load_model(str(path), arch="digits-lenet5")
        assert path.name in str(err.value) and "\n" not in str(err.value)
        assert "--trust" not in str(err.value)
    with pytest.raises(UserError, match="does not exist"):
        load_model(str(tmp_path / f"missing{suffix}"), arch="digits-lenet5")
    with pytest.raises(UserError, match="unknown model 'digits-vg'.*digits-vgg"):
        load_model("digits-vg")


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_torchscript_with_and_without_arch(tmp_path):
    source = load_model("digits-lenet5")
    path = tmp_path / "lenet.pt"
    torch.jit.trace(source.module, torch.zeros(1, 1, 32, 32)).save(str(path))
    for arch in (None, "digits-lenet5"):  # TorchScript is code: only with trust
        with pytest.raises(NeedsTrust, match="TorchScript archive, which runs code.*pass --trust") as err:
            load_model(str(path), arch=arch)
        assert err.value.kind == "TorchScript" and "\n" not in str(err.value)
    whole = load_model(str(path), trust=True)
    torch.testing.assert_close(_logits(whole), _logits(source), rtol=1e-6, atol=1e-6)
    assert "TorchScript (trusted)" in whole.source and "--arch" in whole.notice
    try:  # the layer table tries a TorchScript chain; where it cannot, one line says to pass --arch
        rows = whole.layers()
    except UserError as exc:
        assert "architecture" in str(exc) and "\n" not in str(exc)
    else:
        assert rows and rows[-1].shape == (10,)
    split = load_model(str(path), arch="digits-lenet5", trust=True)
    torch.testing.assert_close(_logits(split), _logits(source), rtol=0, atol=0)
    assert split.layer("c5").shape == (120, 1, 1)


class residual_architecture(torch.nn.Module):  # noqa: N801 - the word "architecture" in a TorchScript class name
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        return self.conv(x) + x  # not a chain of its children: its layers cannot be listed


@pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")
def test_unlistable_torchscript_is_a_typed_needs_architecture():
    """The error's type says "pass --arch", whatever its text holds (the class name here says "architecture")."""
    from workbench.errors import NeedsArchitecture
    from workbench.models.sources.memory import from_module

    model = from_module(torch.jit.script(residual_architecture()), name="residual.pt", input_size=(1, 8, 8))
    with pytest.raises(NeedsArchitecture, match="residual.pt: residual_architecture is TorchScript.*pass --arch NAME"):
        model.layers()


def test_full_pickle_needs_trust(tmp_path):
    module = A.digits_vgg()
    path = tmp_path / "net.pt"
    torch.save(module, path)
    with pytest.raises(UserError, match="pass --trust"):
        load_model(str(path))
    model = load_model(str(path), trust=True)
    assert "pickled module" in model.source and model.input_size == (1, 32, 32)
    assert "assumed" in model.notice and model.class_names is None
    assert model.layer("relu5").shape == (128, 8, 8)
    (tmp_path / "net.json").write_text(json.dumps({"input_size": [1, 32, 32], "mean": [0.5], "std": [0.25],
                                                  "class_names": list("abcdefghij")}))
    with_sidecar = load_model(str(path), trust=True)
    assert with_sidecar.notice is None and with_sidecar.input_size == (1, 32, 32)
    assert with_sidecar.mean == (0.5,) and with_sidecar.std == (0.25,) and with_sidecar.class_names[0] == "a"


def test_malicious_user_file_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "weights.pth"
    torch.save({"c1.weight": Malicious(marker)}, path)
    for arch in (None, "digits-lenet5"):
        with pytest.raises(UserError) as err:
            load_model(str(path), arch=arch)
        assert "--trust" in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_sidecar_json_sets_normalization_and_bad_json_is_an_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file(_lenet_state(), str(path), metadata={"arch": "digits-lenet5"})
    (tmp_path / "m.json").write_text(json.dumps({"mean": [0.1], "std": [0.2], "dataset": "mine", "note": 1}))
    model = load_model(str(path))
    assert model.mean == (0.1,) and model.std == (0.2,) and model.dataset == "mine" and model.metadata["note"] == 1
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_model(str(path))
    (tmp_path / "m.json").write_text(json.dumps({"mean": [0.1, 0.2], "std": [0.2, 0.2]}))
    with pytest.raises(UserError, match="one value per input channel"):
        load_model(str(path))


def test_to_device_and_arch_on_a_zoo_name():
    model = load_model("digits-lenet5")
    moved = model.to("cpu")
    assert isinstance(moved, LoadedModel) and moved.device == torch.device("cpu")
    with pytest.raises(UserError, match="--arch applies to model files"):
        load_model("digits-lenet5", arch="digits-vgg")


def test_state_dict_saved_before_batchnorm_counted_batches_loads(tmp_path):
    state = {k: v for k, v in zoo.build_architecture("digits-vgg", seed=4).state_dict().items()
             if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pt")
    model = load_model(str(tmp_path / "old.pt"), arch="digits-vgg")
    assert torch.equal(model.module.state_dict()["bn3.running_var"], state["bn3.running_var"])


def _digits_vgg_file(tmp_path, sidecar=None, raw_sidecar=None):
    from safetensors.torch import save_file

    path = tmp_path / "net.safetensors"
    save_file(zoo.build_architecture("digits-vgg", seed=1).state_dict(), str(path), metadata={"arch": "digits-vgg"})
    if sidecar is not None:
        (tmp_path / "net.json").write_text(json.dumps(sidecar))
    if raw_sidecar is not None:
        (tmp_path / "net.json").write_text(raw_sidecar)
    return path


@pytest.mark.parametrize("sidecar,reason", [
    ({"input_size": [1, 4, 4]}, "Output size is too small"),
    ({"input_size": [3, 32, 32], "mean": [0, 0, 0], "std": [1, 1, 1]}, "to have 1 channels, but got 3"),
    ({"input_size": [1, 48, 48]}, "shapes cannot be multiplied"),
])
def test_sidecar_input_size_that_does_not_fit_is_one_line(tmp_path, capsys, sidecar, reason):
    from workbench.cli import main

    sidecar = {"mean": [0.5], "std": [0.25], **sidecar}
    path = _digits_vgg_file(tmp_path, sidecar)
    size = "x".join(map(str, sidecar["input_size"]))
    with pytest.raises(UserError) as err:
        load_model(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}: the input size {size} from net.json does not fit the network (")
    assert reason in message and message.endswith("): fix input_size in the sidecar")
    assert "--arch" not in message and "\n" not in message
    assert main(["layers", "--model", str(path)]) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "does not fit the network" in err_lines[0] and "Traceback" not in err_lines[0]


def test_layer_listing_reports_a_misfit_without_a_traceback(tmp_path, capsys):
    from workbench.models.loading import LoadedModel

    model = load_model("digits-vgg")
    bad = LoadedModel(**{**{k: getattr(model, k) for k in model.__dataclass_fields__ if not k.startswith("_")},
                         "name": "net.pt", "input_size": (1, 4, 4), "input_from": "net.json"})
    with pytest.raises(UserError, match=r"net.pt: the input size 1x4x4 from net.json does not fit the network "
                                        r"\(.*Output size is too small.*\): fix input_size in the sidecar"):
        bad.layers()
    assert capsys.readouterr().err == "", "torch.fx's ShapeProp printed a traceback; nothing may be printed"


def test_an_assumed_input_size_that_does_not_fit_asks_for_a_sidecar(tmp_path):
    module = A.cifar_vgg("maxpool")  # grey input, so 1x32x32 is assumed: fits
    torch.save(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 30 * 30, 2)),
               tmp_path / "small.pt")
    with pytest.raises(UserError, match=r"small.pt: the assumed input size 3x224x224 does not fit the network "
                                        r"\(.*\): give input_size \[C, H, W\] in a sidecar small.json"):
        load_model(str(tmp_path / "small.pt"), trust=True)
    (tmp_path / "small.json").write_text(json.dumps({"input_size": [3, 32, 32], "mean": [0.5] * 3, "std": [0.5] * 3}))
    assert load_model(str(tmp_path / "small.pt"), trust=True).layers()[-1].shape == (2,)
    torch.save(module, tmp_path / "grey.pt")
    assert load_model(str(tmp_path / "grey.pt"), trust=True).input_size == (1, 32, 32)


@pytest.mark.parametrize("sidecar,match", [
    ('{"input_size": [1, 32, NaN]}', "not valid JSON.*NaN"),
    ('{"mean": [Infinity], "std": [1]}', "not valid JSON.*Infinity"),
    ('{"mean": [1e400], "std": [1]}', "mean must be a list of finite numbers"),
    ('{"std": [-Infinity]}', "not valid JSON"),
    ('{"input_size": [1, 32.5, 32]}', "whole numbers"),
    ('{"input_size": [1, 32]}', "input_size must be 3 finite numbers"),
    ('{"input_size": "1x32x32"}', "input_size must be 3 finite numbers"),
    ('{"input_size": [true, 32, 32]}', "input_size must be 3 finite numbers"),
    ('{"input_size": [0, 32, 32]}', "out of range: C from 1 to 64"),
    ('{"input_size": [65, 32, 32]}', "input_size 65x32x32 is out of range"),
    ('{"input_size": [1, 5000, 32]}', "H and W from 1 to 4096"),
    ('{"input_size": [1, 32, 1e30]}', "whole numbers|out of range"),
    ('{"mean": ["a"], "std": [1]}', "mean must be a list of finite numbers"),
    ('{"mean": [0.5], "std": [0]}', "1e-6 <= std <= 1e6"),
    ('{"mean": [1e300], "std": [1]}', r"\|mean\| <= 1e6"),
    ('{"mean": [0.5, 0.5], "std": [1, 1]}', "one value per input channel \\(1\\)"),
    ('{"class_names": "0123456789"}', "class_names must be a list of strings"),
    ('{"architecture": 7}', "architecture must be a string"),
    ('[1, 2]', "must hold a JSON object"),
    ('{"a": ' * 100000 + '1' + '}' * 100000, "not valid JSON"),
])
def test_bad_sidecar_values_are_one_line_errors(tmp_path, sidecar, match):
    path = _digits_vgg_file(tmp_path, raw_sidecar=sidecar)
    with pytest.raises(UserError, match=match) as err:
        load_model(str(path))
    assert "\n" not in str(err.value) and "net.json" in str(err.value)


def test_a_huge_sidecar_is_refused_before_it_is_read(tmp_path):
    path = _digits_vgg_file(tmp_path, raw_sidecar='{"pad": "' + "x" * (5 << 20) + '"}')
    with pytest.raises(UserError, match="net.json beside the model is larger than 4 MB"):
        load_model(str(path))


def test_a_good_sidecar_with_a_new_input_size_loads_and_lists_layers(tmp_path):
    path = _digits_vgg_file(tmp_path, {"input_size": [1, 32, 32], "mean": [0.5], "std": [0.25], "class_names": list(range(10))})
    model = load_model(str(path))
    assert model.input_from == "net.json" and model.class_names == [str(i) for i in range(10)]
    assert model.layer("relu5").shape == (128, 8, 8)
