"""The lecture's studies (workbench.studies.lecture) and ``workbench gabor-fit``, at tiny sizes."""

import json

import pytest
import torch

from workbench.cli import main
from workbench.data.digits import load_digits32
from workbench.jobs import run_job
from workbench.studies.lecture import (_network, fully_connected, one_layer_study, parameter_hashes, train_one_layer,
                                       trainable_layers, wavelet_study)


def _small(n=32):
    x, y = load_digits32("train")
    xt, yt = load_digits32("test")
    return (x[:n], y[:n]), (xt[:n // 2], yt[:n // 2])


@pytest.mark.parametrize("net,layer", [("digits-vgg", "conv3"), ("digits-vgg", "fc"), ("fc", "fc1"), ("fc", "fc7")])
def test_one_layer_training_changes_only_that_layers_parameters(net, layer):
    torch.manual_seed(0)
    module = _network(net, seed=0)
    train, test = _small()
    before = parameter_hashes(module)
    result = run_job(train_one_layer(module, layer, epochs=1, seed=0, train_data=train, test_data=test))
    after = parameter_hashes(module)
    changed = sorted(n for n in before if before[n] != after[n])
    assert changed == sorted([f"{layer}.weight", f"{layer}.bias"]) == sorted(result["changed"])
    assert all(p.requires_grad for p in module.parameters())  # handed back trainable


def test_all_layers_and_no_layer():
    train, test = _small()
    module = fully_connected(widths=(8, 8))
    every = run_job(train_one_layer(module, None, epochs=1, seed=0, train_data=train, test_data=test))
    assert sorted(every["changed"]) == sorted(n for n, _p in module.named_parameters())
    none = run_job(train_one_layer(module, "", epochs=1, seed=0, train_data=train, test_data=test))
    assert none["changed"] == [] and 0.0 <= none["test_accuracy"] <= 1.0
    assert trainable_layers(module) == ["fc1", "fc2", "fc3"]
    from workbench.errors import UserError
    with pytest.raises(UserError, match="not a layer with weights"):
        run_job(train_one_layer(module, "relu1", epochs=1, seed=0, train_data=train, test_data=test))


def test_one_layer_study_writes_its_run_folder(tmp_path, monkeypatch):
    import workbench.studies.lecture as lecture

    monkeypatch.setattr(lecture, "fully_connected", lambda: fully_connected(widths=(16, 16)))
    out = tmp_path / "run"
    m = run_job(one_layer_study(seeds=1, epochs=5, nets=("fc",), out=out, data=_small(384)))
    rows = m["nets"]["fc"]["layers"]
    assert [r["layer"] for r in rows] == ["fc1", "fc2", "fc3"]
    assert all(r["only_this_layer_changed"] and len(r["changed"]) == 2 for r in rows)
    assert [r["parameters"] for r in rows] == [1024 * 16 + 16, 16 * 16 + 16, 16 * 10 + 10]
    assert m["nets"]["fc"]["untrained"]["changed"] == [] and len(m["nets"]["fc"]["all_layers"]["changed"]) == 6
    # training beats the untrained net (near chance): every layer together, and the best single layer
    untrained = m["nets"]["fc"]["untrained"]["test_accuracy"]
    assert m["nets"]["fc"]["all_layers"]["test_accuracy"] > untrained + 0.2
    assert max(r["test_accuracy"] for r in rows) > untrained + 0.1
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["complete"] and saved["nets"]["fc"]["best_layer"] == m["nets"]["fc"]["best_layer"]
    assert (out / "images" / "one_layer_fc.png").is_file() and (out / "images" / "one_layer_fc.pdf").is_file()
    assert json.loads((out / "run.json").read_text())["status"] == "done"


def test_wavelet_study_accuracy_and_sparsity_against_tau(tmp_path):
    out = tmp_path / "run"
    x, y = load_digits32("train")
    xt, yt = load_digits32("test")
    m = run_job(wavelet_study(seeds=1, epochs=3, frames=(("haar", 1),), taus=(0.0, 0.05, 0.3), kinds=("soft",),
                              out=out, data=((x[:256], y[:256]), (xt[:128], yt[:128]))))
    rows = [r for r in m["rows"] if not r["odd"]]
    sparsity = [r["sparsity"] for r in rows]
    assert sparsity[0] < 0.05 and sparsity[0] < sparsity[1] < sparsity[2]  # τ keeps fewer codes
    assert all(0.5 < r["test_accuracy"] <= 1.0 for r in m["rows"])       # far above chance (0.1)
    assert len(m["rows"]) == 6 and {r["odd"] for r in m["rows"]} == {False, True}
    assert set(m["controls"]) == {"learned_first_layer", "pixels"}
    assert m["controls"]["learned_first_layer"]["channels"] == 4
    images = sorted(p.name for p in (out / "images").iterdir() if p.suffix == ".png")
    assert images == ["first_layer_filters.png", "wavelet_accuracy.png", "wavelet_sparsity.png"]


def test_lecture_study_cli_refuses_what_it_does_not_take(tmp_path, capsys):
    assert main(["study", "one-layer", "--n", "5", "--out", str(tmp_path / "a")]) == 2
    assert "takes no --n" in capsys.readouterr().err
    assert main(["study", "wavelet-first-layer", "--executor", "process", "--out", str(tmp_path / "b")]) == 2
    assert "runs in this process" in capsys.readouterr().err
    assert main(["study", "one-layer", "--seeds", "0", "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_gabor_fit_cli(tmp_path, capsys):
    out = tmp_path / "fit"
    assert main(["gabor-fit", "--model", "digits-lenet5", "--out", str(out), "--quiet", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in rows] == ["c1", "c3", "c5"]
    assert all(0.0 < r["mean_fit"] <= 1.0 and r["random_fit"] == pytest.approx(rows[0]["random_fit"]) for r in rows)
    saved = json.loads((out / "metrics.json").read_text())
    assert len(saved["layers"][0]["filters"]) == 6
    assert {p.name for p in (out / "images").iterdir()} >= {"gabor_fit.png", "first_layer_atoms.png",
                                                          "composite_filters.png"}


def test_gabor_fit_refuses_bad_sizes_and_nan_weights(tmp_path, capsys):
    assert main(["gabor-fit", "--model", "digits-lenet5", "--max-slices", "0", "--out", str(tmp_path / "a")]) == 2
    assert "--max-slices" in capsys.readouterr().err and not (tmp_path / "a").exists()
    import numpy as np

    from workbench.errors import UserError
    from workbench.filters.gabor import fit_slices
    with pytest.raises(UserError, match="NaN"):
        fit_slices(np.full((1, 3, 3), np.nan))
