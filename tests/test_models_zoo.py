"""The zoo registry and reproducible training of the digits models."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from workbench.data import load_digits32
from workbench.errors import UserError
from workbench.jobs import Cancelled, CancelToken, Log, Step, run_job
from workbench.models import load_model, zoo_entries
from workbench.models.zoo import shift_augment, train_zoo_model


def test_zoo_lists_every_kind():
    entries = {e.name: e for e in zoo_entries()}
    assert entries["digits-vgg"].kind == "bundled" and entries["digits-vgg"].trained
    assert entries["digits-lenet5"].kind == "bundled" and entries["digits-lenet5"].trained
    for down in ("subsample", "maxpool", "avgpool", "strided", "strided-relu"):
        assert entries[f"cifar-vgg-{down}"].kind == "architecture"
        assert entries[f"cifar-vgg-{down}"].input_size == (1, 32, 32)
    for name in ("alexnet", "vgg16", "resnet18"):
        assert entries[name].kind == "torchvision" and entries[name].input_size == (3, 224, 224)
    assert all(e.description for e in entries.values())


def test_shift_augment_moves_content_by_at_most_two_pixels():
    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 15, 15] = 1.0
    y = shift_augment(2)(x, torch.Generator().manual_seed(0))
    positions = y[:, 0].flatten(1).argmax(1)
    rows, cols = positions // 32, positions % 32
    assert y.shape == x.shape and torch.equal(y.sum((1, 2, 3)), torch.ones(64))
    assert rows.min() == 13 and rows.max() == 17 and cols.min() == 13 and cols.max() == 17
    assert torch.equal(y, shift_augment(2)(x, torch.Generator().manual_seed(0)))


def _small_split():
    """A 200/100 slice of the digits split keeps the test fast."""
    x, y = load_digits32("train")
    xt, yt = load_digits32("test")
    return (x[:200], y[:200]), (xt[:100], yt[:100])


def _train(tmp_path, seed, **kw):
    events = []
    train, test = _small_split()
    result = run_job(train_zoo_model("digits-lenet5", seed=seed, epochs=2, out=tmp_path, train_data=train,
                                     test_data=test, **kw), events.append)
    return result, events


def test_training_is_reproducible_and_writes_weights_and_metadata(tmp_path):
    a, events = _train(tmp_path / "a", seed=5)
    b, _ = _train(tmp_path / "b", seed=5)
    c, _ = _train(tmp_path / "c", seed=6)
    wa, wb, wc = (load_file(str(p / "digits-lenet5.safetensors")) for p in (tmp_path / "a", tmp_path / "b", tmp_path / "c"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["c1.weight"], wc["c1.weight"])
    assert any(isinstance(e, Step) for e in events) and any(isinstance(e, Log) for e in events)
    meta = json.loads((tmp_path / "a" / "digits-lenet5.json").read_text())
    assert meta["seed"] == 5 and meta["epochs"] == 2 and meta["dataset"] == "digits"
    assert (meta["train_images"], meta["test_images"]) == (200, 100)
    assert meta["input_size"] == [1, 32, 32] and meta["class_names"] == [str(i) for i in range(10)]
    assert meta["test_accuracy"] == a["test_accuracy"] and 0.3 < meta["test_accuracy"] <= 1.0
    model = load_model(str(tmp_path / "a" / "digits-lenet5.safetensors"))
    assert model.trained and model.metadata["seed"] == 5 and model.class_names[3] == "3"


def test_random_labels_model_gets_its_own_name(tmp_path):
    result, _ = _train(tmp_path, seed=0, random_labels=True)
    assert result["path"].endswith("digits-lenet5-random-labels.safetensors")
    assert not (tmp_path / "digits-lenet5.safetensors").exists()
    meta = json.loads((tmp_path / "digits-lenet5-random-labels.json").read_text())
    assert meta["random_labels"] is True and meta["test_accuracy"] < 0.3


def test_cancelled_training_writes_nothing(tmp_path):
    cancel = CancelToken()
    train, test = _small_split()
    job = train_zoo_model("digits-lenet5", epochs=1, out=tmp_path, train_data=train, test_data=test, cancel=cancel)
    with pytest.raises(Cancelled):
        for event in job:
            if isinstance(event, Step) and event.iteration == 3:
                cancel.cancel()
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_training_rejects_unknown_names_and_bad_epochs(tmp_path):
    with pytest.raises(UserError, match="cannot train 'alexnet'"):
        run_job(train_zoo_model("alexnet", out=tmp_path))
    with pytest.raises(UserError, match="--epochs"):
        run_job(train_zoo_model("digits-vgg", epochs=0, out=tmp_path))
