"""Φ_ℓ computes the network only up to layer ℓ and equals the full network's activation there."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from workbench.errors import UserError
from workbench.models import load_model


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


@contextmanager
def recording(module):
    """Forward hooks on every leaf module recording (name, output) in call order; always removed."""
    calls: list[tuple[str, torch.Tensor]] = []
    handles = [m.register_forward_hook(lambda _m, _i, out, name=name: calls.append((name, out.detach().clone())))
               for name, m in module.named_modules() if not list(m.children())]
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def _digits_batch(model, n=4):
    from workbench.data import load_digits32

    x, _ = load_digits32("test")
    mean = torch.tensor(model.mean).view(1, -1, 1, 1)
    std = torch.tensor(model.std).view(1, -1, 1, 1)
    return (x[:n] - mean) / std


def test_digits_vgg_truncation_runs_nothing_past_the_layer():
    model = load_model("digits-vgg")
    x = _digits_batch(model)
    order = [name for name, _ in model.module.named_children()]
    with recording(model.module) as full:
        logits = model.module(x)
    phi = model.truncate("relu3")
    with recording(model.module) as part:
        y = phi(x)
    assert [name for name, _ in part] == order[:order.index("relu3") + 1]
    assert y.shape == (4, 64, 16, 16)
    torch.testing.assert_close(y, dict(full)["relu3"], rtol=0, atol=0)
    assert logits.shape == (4, 10)


def test_truncated_module_is_frozen_eval_and_differentiable():
    model = load_model("digits-lenet5")
    phi = model.truncate("tanh3")
    assert not phi.training
    phi.train()
    assert not phi.training
    assert all(not p.requires_grad for p in phi.parameters())
    x = _digits_batch(model, 2).requires_grad_(True)
    phi(x).square().sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.module.parameters())


def test_last_layer_truncation_equals_the_model():
    model = load_model("digits-lenet5")
    x = _digits_batch(model)
    torch.testing.assert_close(model.truncate("output")(x), model.module(x), rtol=0, atol=0)


def test_cifar_names_ending_in_digits_truncate_at_the_right_module():
    model = load_model("cifar-vgg-maxpool")
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with recording(model.module) as full:
        model.module(x)
    for name in ("conv1_1", "conv1_2", "relu2_2", "down3"):
        with recording(model.module) as part:
            y = model.truncate(name)(x)
        assert part[-1][0] == name
        torch.testing.assert_close(y, dict(full)[name], rtol=0, atol=0)


def test_resnet18_truncation_at_branches(empty_hub):
    model = load_model("resnet18")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with recording(model.module) as full:
        model.module(x)
    full_names = [n for n, _ in full]

    phi = model.truncate("layer2.1.relu_1")
    with recording(model.module) as part:
        y = phi(x)
    # the second call of layer2.1.relu (after the add) is the last thing that runs
    second_relu = [i for i, n in enumerate(full_names) if n == "layer2.1.relu"][1]
    assert [n for n, _ in part] == full_names[:second_relu + 1]
    assert not any(n.startswith(("layer3", "layer4", "fc", "avgpool")) for n, _ in part)
    torch.testing.assert_close(y, full[second_relu][1], rtol=0, atol=0)

    phi = model.truncate("layer3.0.add")
    with recording(model.module) as part:
        y = phi(x)
    ran = [n for n, _ in part]
    assert "layer3.0.downsample.1" in ran and "layer3.0.bn2" in ran
    assert "layer3.0.relu" in ran and ran.count("layer3.0.relu") == 1  # the relu after the add never runs
    assert not any(n.startswith(("layer3.1", "layer4", "fc")) for n in ran)
    expected = dict(full)["layer3.0.bn2"] + dict(full)["layer3.0.downsample.1"]
    torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)
    assert y.shape == (1,) + model.layer("layer3.0.add").shape


def test_truncate_by_alias_equals_by_name(empty_hub):
    model = load_model("alexnet")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(model.truncate("relu2")(x), model.truncate("features.4")(x), rtol=0, atol=0)
    with recording(model.module) as part:
        model.truncate("pool1")(x)
    assert [n for n, _ in part] == ["features.0", "features.1", "features.2"]


def test_unknown_layer_is_a_user_error():
    model = load_model("digits-vgg")
    with pytest.raises(UserError, match="did you mean"):
        model.truncate("conv9")


# --- threads: the model owns its Φ cache and lock; tracing leaves other threads alone ----------

def _in_threads(n, fn):
    """Run fn(i) in n threads started together; their results, re-raising the first error."""
    import threading

    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        barrier.wait()
        try:
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def test_concurrent_truncations_share_one_cached_module():
    model = load_model("digits-vgg")
    phis = _in_threads(4, lambda i: model.truncate("relu3" if i % 2 else "bn3"))
    assert phis[0] is phis[2] and phis[1] is phis[3] and phis[0] is not phis[1]
    assert model.truncate("relu3") is phis[1]
    assert set(model._truncations) == {"relu3", "bn3"}
    tables = _in_threads(3, lambda i: load_model("digits-lenet5").layers())
    shared = load_model("digits-lenet5")
    assert _in_threads(3, lambda i: shared.layers())[0] is shared.layers()
    assert [l.name for l in tables[0]] == [l.name for l in shared.layers()]


def test_forward_passes_take_no_lock():
    import threading

    from workbench.models.tracing import ThreadTracer

    model = load_model("digits-vgg")
    phi = model.truncate("relu3")
    x = _digits_batch(model, 2)
    expected = phi(x)
    held, release = threading.Event(), threading.Event()

    def hold():
        with model._lock, ThreadTracer.turn:
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        got = _in_threads(1, lambda i: phi(x))[0]  # would hang if a forward pass needed either lock
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        assert model.layers()[0].name == "conv1"  # cached: no lock taken either
    finally:
        release.set()
        holder.join()


def test_forward_passes_in_other_threads_during_traces_are_exact():
    """torch.fx patches nn.Module.__call__ process-wide while it traces; with torchvision's own
    tracer nearly every forward pass in another thread meanwhile fails."""
    import threading

    from workbench.models.graph import trace

    torch.manual_seed(0)
    tracing, running = load_model("digits-vgg"), load_model("digits-lenet5")
    phi = running.truncate("tanh3")
    x = _digits_batch(running, 2)
    expected = phi(x)
    done, failures, passes = threading.Event(), [], [0]
    original_call = torch.nn.Module.__call__

    def forward_loop():
        while not done.is_set():
            try:
                if not torch.equal(phi(x), expected):
                    failures.append("different output")
            except Exception as exc:  # noqa: BLE001
                failures.append(repr(exc))
            passes[0] += 1

    worker = threading.Thread(target=forward_loop)
    worker.start()
    try:
        for _ in range(8):
            trace(tracing.module)
    finally:
        done.set()
        worker.join()
    assert passes[0] > 0 and failures == []
    assert torch.nn.Module.__call__ is original_call


def test_traces_of_two_models_at_once_leave_nn_module_unpatched():
    from workbench.models.graph import trace

    modules = [load_model("digits-vgg").module, load_model("digits-lenet5").module]
    original_call, original_getattr = torch.nn.Module.__call__, torch.nn.Module.__getattr__
    counts = _in_threads(2, lambda i: [len(trace(modules[i])[2]) for _ in range(20)])
    assert len(set(counts[0])) == 1 and len(set(counts[1])) == 1 and counts[0][0] != counts[1][0]
    assert torch.nn.Module.__call__ is original_call and torch.nn.Module.__getattr__ is original_getattr


def test_a_loaded_model_copies_and_pickles_with_a_fresh_lock_and_cache():
    import copy
    import pickle

    model = load_model("digits-lenet5")
    phi = model.truncate("tanh3")
    x = _digits_batch(model, 2)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert clone._lock is not model._lock and clone._truncations == {}
        assert [l.name for l in clone.layers()] == [l.name for l in model.layers()]
        torch.testing.assert_close(clone.truncate("tanh3")(x), phi(x), rtol=0, atol=0)
        assert clone.truncate("tanh3") is not phi


def test_feature_extractor_gives_several_layers_in_one_pass(empty_hub):
    from workbench.deformation.features import default_layers
    from workbench.models.truncate import feature_extractor

    model = load_model("cifar-vgg-maxpool")
    names = default_layers(model.module)[1:]  # module paths such as relu1_2, which torchvision renames
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    with recording(model.module) as full:
        model.module(x)
    extractor = feature_extractor(model.module, names)
    with recording(model.module) as part:
        out = extractor(x)
    assert list(out) == names and part[-1][0] == names[-1] == "down4"
    for name in names:
        torch.testing.assert_close(out[name], dict(full)[name], rtol=0, atol=0)

    resnet = load_model("resnet18")
    y = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(4))
    with recording(resnet.module) as full:
        resnet.module(y)
    relus = [out for name, out in full if name == "layer1.0.relu"]
    out = feature_extractor(resnet.module, ["layer1.0.relu", "layer1.0.relu_1", "fc"])(y)
    torch.testing.assert_close(out["layer1.0.relu"], relus[0], rtol=0, atol=0)
    torch.testing.assert_close(out["layer1.0.relu_1"], relus[1], rtol=0, atol=0)
    torch.testing.assert_close(out["fc"], dict(full)["fc"], rtol=1e-6, atol=1e-6)
    with pytest.raises(UserError, match="unknown layer 'relu9'"):
        feature_extractor(model.module, ["relu1_1", "relu9"])


# --- TorchScript: a scripted chain is cut by running its layers up to ℓ -----------------------------

def _scripted_cnn(tmp_path):
    import warnings

    with torch.random.fork_rng():
        torch.manual_seed(0)
        source = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, stride=2), torch.nn.ReLU()),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10)).eval()
        for p in source.parameters():  # BatchNorm's statistics as well as its affine part
            p.data.uniform_(-1, 1)
        source[1].running_mean.uniform_(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        path = tmp_path / "cnn.pt"
        torch.jit.script(source).save(str(path))
        return source, torch.jit.load(str(path))


def test_scripted_truncation_equals_the_source_module(tmp_path):
    from workbench.models.graph import layer_table
    from workbench.models.truncate import feature_extractor, truncate

    source, scripted = _scripted_cnn(tmp_path)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    names = [l.name for l in layer_table(scripted, (3, 32, 32))]
    assert names == [l.name for l in layer_table(source, (3, 32, 32))] == ["0", "1", "2", "3", "4.0", "4.1", "5", "6", "7"]
    with recording(source) as full:
        logits = source(x)
    for name in names:
        y = truncate(scripted, name)(x)
        torch.testing.assert_close(y, truncate(source, name)(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(truncate(scripted, "4.1")(x), dict(full)["4.1"], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(truncate(scripted, "7")(x), logits, rtol=1e-6, atol=1e-6)
    phi = truncate(scripted, "3")
    assert len(phi.extractor.steps) == 4 and not phi.training  # nothing past layer 3 is held or run
    assert all(not p.requires_grad for p in phi.parameters())
    out = feature_extractor(scripted, ["4.0", "2"])(x)
    assert list(out) == ["4.0", "2"]
    torch.testing.assert_close(out["2"], dict(full)["2"], rtol=1e-6, atol=1e-6)
    with pytest.raises(UserError, match="unknown layer '4'"):
        truncate(scripted, "4")  # a chain that is opened is not a layer itself


def test_scripted_truncation_is_differentiable(tmp_path):
    from workbench.models.truncate import truncate

    _, scripted = _scripted_cnn(tmp_path)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(6)).requires_grad_(True)
    truncate(scripted, "4.1")(x).square().sum().backward()
    assert float(x.grad.abs().sum()) > 0
