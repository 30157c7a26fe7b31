"""The core never imports Qt; the CLI pays for neither Qt nor torch until it needs them."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contract_holds():
    r = subprocess.run(["lint-imports", "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Only workbench.ui imports Qt KEPT" in r.stdout
    assert "The core's layers KEPT" in r.stdout


def test_core_modules_load_without_qt():
    code = ("import sys, workbench.cli, workbench.preimage, workbench.models, workbench.runs, workbench.jobs; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'superqt')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_help_does_not_import_torch():
    code = "import sys; from workbench.cli import build_parser; build_parser(); sys.exit(1 if 'torch' in sys.modules else 0)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, "building the CLI parser imported torch: keep imports inside the command functions"
