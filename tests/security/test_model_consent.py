"""Consent, stated plainly (issue 17): a ``package.module:callable`` typed on your own command line is
consent to import it and call it — but only an nn.Module class or a Python function defined in the
package named, never a built-in, the standard library or another callable object, checked before
anything is called; the current directory never shadows an installed package unless ``--path DIR``
says so; ``demo`` follows the same rule."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from workbench.cli import main
from workbench.config.model import ModelSpec
from workbench.errors import UserError
from workbench.models import load_model


def _refused(capsys, argv, *, contains):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert contains in err, err
    return err


@pytest.mark.parametrize("spec, kwargs, contains", [
    ("os:system", '{"command": "touch F"}', "standard library's os, which builds no nn.Module: refused"),
    ("subprocess:run", '{"args": "touch F", "shell": true}', "standard library's subprocess"),
    ("builtins:exec", '{"source": "open(\\"F\\", \\"w\\")"}', "standard library's builtins"),
    ("shutil:rmtree", '{"path": "."}', "standard library's shutil"),
])
def test_the_standard_library_is_refused_before_it_is_imported_or_called(capsys, tmp_path, monkeypatch, spec, kwargs,
                                                                         contains):
    monkeypatch.chdir(tmp_path)
    _refused(capsys, ["layers", "--model", spec, "--model-kwargs", kwargs], contains=contains)
    assert list(tmp_path.iterdir()) == [], "the command did not run"


@pytest.fixture
def hostile_package(tmp_path, monkeypatch):
    """A package ``evilpkg`` in a folder given by --path: a class that is no nn.Module and writes a
    marker when constructed, a re-exported built-in, a function re-exported from another package,
    a callable object, and one honest factory."""
    root = tmp_path / "lib"
    (root / "evilpkg").mkdir(parents=True)
    marker = tmp_path / "called"
    (root / "evilpkg" / "__init__.py").write_text(textwrap.dedent(f"""
        import functools
        from json import dumps
        from os import system
        import torch.nn as nn

        class NotNet:
            def __init__(self, **kwargs):
                open({str(marker)!r}, "w").write("called")

        class Gadget:
            def __call__(self, **kwargs):
                open({str(marker)!r}, "w").write("called")
                return nn.Conv2d(3, 4, 3)

        gadget = Gadget()
        partial = functools.partial(NotNet)

        def make(width=4):
            return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU())

        def not_a_net():
            open({str(marker)!r}, "w").write("called")
            return 5
    """))
    monkeypatch.chdir(tmp_path)
    yield root, marker
    for name in [m for m in sys.modules if m == "evilpkg" or m.startswith("evilpkg.")]:
        del sys.modules[name]


@pytest.mark.parametrize("attr, contains", [
    ("NotNet", "is the class NotNet, not an nn.Module class: refused"),
    ("system", "is a built-in function, not a Python function or nn.Module class: refused"),
    ("dumps", "is defined in json, not in evilpkg: refused"),
    ("gadget", "is a Gadget object, not a Python function or nn.Module class: refused"),
    ("partial", "is a partial object, not a Python function or nn.Module class: refused"),
])
def test_what_is_no_model_factory_is_refused_before_it_is_called(capsys, hostile_package, attr, contains):
    root, marker = hostile_package
    _refused(capsys, ["layers", "--model", f"evilpkg:{attr}", "--path", str(root), "--input-size", "3x8x8"],
             contains=f"evilpkg:{attr} {contains}")
    assert not marker.exists(), "nothing was called"


def test_an_honest_factory_opens_and_what_it_returns_must_be_a_module(capsys, hostile_package):
    root, marker = hostile_package
    model = load_model(ModelSpec("evilpkg:make", model_kwargs='{"width": 5}', input_size=(3, 8, 8), path=str(root)))
    assert model.layers()[0].shape == (5, 6, 6)
    assert model.spec.path == str(root), "run.json records the folder (absolute)"
    with pytest.raises(UserError, match="returned a int, not an nn.Module"):
        load_model(ModelSpec("evilpkg:not_a_net", input_size=(3, 8, 8), path=str(root)))


def test_path_applies_to_callables_only():
    with pytest.raises(UserError, match="--path applies to a package.module:callable model"):
        ModelSpec("digits-vgg", path="/tmp").validate()


def test_the_current_folder_never_shadows_an_installed_package(tmp_path):
    """``python -m workbench`` puts the current folder first on sys.path: a ``timm/`` there replaced
    the installed timm for a callable that imports it. The folder is searched only after the
    installed packages now; the user's own module, found nowhere else, is still found there."""
    (tmp_path / "timm").mkdir()
    (tmp_path / "timm" / "__init__.py").write_text("open('SHADOWED', 'w').write('yes')\n")
    (tmp_path / "usernet.py").write_text(textwrap.dedent("""
        import timm
        import torch.nn as nn

        def make():
            assert hasattr(timm, "create_model"), "the installed timm"
            return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    """))
    r = subprocess.run([sys.executable, "-m", "workbench", "layers", "--model", "usernet:make", "--input-size",
                        "3x8x8", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "SHADOWED").exists(), "the cwd's timm/ was imported"
    assert [row["shape"] for row in json.loads(r.stdout)] == [[4, 6, 6], [4, 6, 6]]


def test_path_comes_before_the_installed_packages(tmp_path, monkeypatch):
    """--path DIR is asked for: DIR is searched first (here a module named like nothing installed,
    imported from another current folder)."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "pathnet_mod.py").write_text("import torch.nn as nn\n\ndef make():\n    return nn.Sequential(nn.Conv2d(3, 2, 3))\n")
    monkeypatch.chdir(tmp_path)
    try:
        with pytest.raises(UserError, match="cannot import pathnet_mod"):
            load_model(ModelSpec("pathnet_mod:make", input_size=(3, 8, 8)))
        model = load_model(ModelSpec("pathnet_mod:make", input_size=(3, 8, 8), path=str(lib)))
        assert model.layers()[-1].shape == (2, 6, 6)
    finally:
        sys.modules.pop("pathnet_mod", None)


def test_demo_takes_the_same_rule(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(capsys, ["demo", "--model", "os:system", "--model-kwargs", '{"command": "touch F"}', "--out",
                      str(tmp_path / "demo")], contains="standard library's os")
    assert list(tmp_path.iterdir()) == []
