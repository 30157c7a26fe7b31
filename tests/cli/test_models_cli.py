"""`workbench layers` and `workbench zoo list|train` end to end."""

from __future__ import annotations

import builtins
import json
import subprocess
import sys

import torch

from workbench.cli import main


def workbench(*args, env=None):
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=300, env=env)


def test_layers_json_in_a_subprocess():
    r = workbench("layers", "--model", "digits-vgg", "--json")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "warning" not in r.stderr
    layers = json.loads(r.stdout)
    assert [l["name"] for l in layers[:3]] == ["conv1", "bn1", "relu1"]
    relu5 = next(l for l in layers if l["name"] == "relu5")
    assert relu5 == {"index": 16, "name": "relu5", "alias": None, "kind": "ReLU", "shape": [128, 8, 8],
                     "rf_size": 24, "stride": 4}


def test_unknown_model_in_a_subprocess_is_one_line_and_exit_2():
    r = workbench("layers", "--model", "digits-vggg")
    assert r.returncode == 2
    assert r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("workbench: error: unknown model 'digits-vggg': did you mean digits-vgg?")


def _run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_layers_table_with_aliases_and_untrained_notice(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    code, out, err = _run(capsys, "layers", "--model", "alexnet")
    assert code == 0
    assert "UNTRAINED" in err and "alexnet-owt-7be5be79.pth" in err and str(tmp_path) in err
    lines = out.splitlines()
    assert lines[0].split() == ["#", "name", "alias", "kind", "shape", "rf", "stride"]
    assert len(lines) == 1 + 22
    conv1 = next(line for line in lines if " conv1 " in line)
    assert conv1.split() == ["0", "features.0", "conv1", "Conv2d", "64x55x55", "11", "4"]
    fc6 = next(line for line in lines if " fc6 " in line)
    assert fc6.split()[-2:] == ["355", "32"]
    kind_column = lines[0].index("kind")
    assert all(line[kind_column - 1] == " " and line[kind_column] != " " for line in lines)


def test_layers_of_files(capsys, tmp_path):
    path = tmp_path / "lenet.pt"
    from workbench.models import zoo

    torch.save(zoo.build_architecture("digits-lenet5").state_dict(), path)
    code, out, err = _run(capsys, "layers", "--model", str(path), "--arch", "digits-lenet5", "--json")
    assert code == 0 and err == ""
    assert json.loads(out)[-1]["name"] == "output"
    code, out, err = _run(capsys, "layers", "--model", str(path))
    assert code == 2 and out == "" and err.startswith("workbench: error: lenet.pt holds only weights: pass --arch")
    code, out, err = _run(capsys, "layers", "--model", str(tmp_path / "nothing.pt"))
    assert code == 2 and "does not exist" in err and len(err.splitlines()) == 1
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 40)
    code, out, err = _run(capsys, "layers", "--model", str(tmp_path / "broken.safetensors"), "--arch", "digits-vgg")
    assert code == 2 and "broken.safetensors is not a readable safetensors file" in err and len(err.splitlines()) == 1


class _Malicious:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


def test_malicious_pickle_needs_trust_and_runs_nothing(capsys, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pth"
    torch.save({"weight": _Malicious(marker)}, path)
    code, out, err = _run(capsys, "layers", "--model", str(path), "--arch", "digits-vgg")
    assert code == 2 and "pass --trust" in err and len(err.splitlines()) == 1
    assert not marker.exists()


def test_zoo_list(capsys):
    code, out, err = _run(capsys, "zoo", "list")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["digits-vgg"][1:3] == ["bundled", "yes"]
    assert rows["cifar-vgg-avgpool"][1] == "architecture"
    assert rows["resnet18"][1] == "torchvision"
    code, out, err = _run(capsys, "zoo", "list", "--json")
    entries = {e["name"]: e for e in json.loads(out)}
    assert entries["digits-lenet5"]["trained"] is True and entries["vgg16"]["input_size"] == [3, 224, 224]


def test_zoo_train_writes_weights_elsewhere(capsys, tmp_path):
    code, out, err = _run(capsys, "zoo", "train", "digits-lenet5", "--epochs", "1", "--seed", "2",
                          "--out", str(tmp_path), "--limit", "300", "--quiet", "--device", "cpu")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["path"] == str(tmp_path / "digits-lenet5.safetensors") and summary["seed"] == 2
    meta = json.loads((tmp_path / "digits-lenet5.json").read_text())
    assert meta["test_accuracy"] == summary["test_accuracy"] > 0.1
    assert meta["train_images"] == 300 and meta["test_images"] == 450
    code, out, err = _run(capsys, "zoo", "train", "alexnet", "--out", str(tmp_path))
    assert code == 2 and "cannot train 'alexnet'" in err
