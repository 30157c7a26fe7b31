"""The Runs dock over a workspace with damaged folders: every valid run is listed, every damaged
one is a row marked unreadable, selecting and reopening any row raises nothing (pytest-qt fails
a test on an exception in a slot), and the GUI thread reads no file."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from workbench.runs import RunStore
from workbench.ui.docks.runs_dock import RunsDock
from workbench.ui.session import Session

CONFIG = {"model": "digits-vgg", "layer": "relu3", "method": "invert", "image": "digits:0", "iters": 12, "seed": 3}


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming ``width`` × ``height`` (the rest missing)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def _dead_pid() -> int:
    return int(Path("/proc/sys/kernel/pid_max").read_text()) + 1 if Path("/proc/sys/kernel/pid_max").is_file() else 2**22 + 1


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "runs"
    store = RunStore(root)
    good = []
    for seed in (1, 2):
        run = store.create("preimage", {**CONFIG, "seed": seed}, "cpu")
        run.write_metrics({"reconstruction_error_mean": 0.25 * seed, "C": 300.0})
        run.save_image("grid.png", np.full((8, 16, 1), 0.5, np.float32))
        run.finish("done")
        good.append(run.path)
    damaged_metrics = store.create("preimage", {**CONFIG, "seed": 4}, "cpu")
    (damaged_metrics.path / "metrics.json").write_text('{"reconstruction_error_mean": 0.')
    (damaged_metrics.path / "images").mkdir()
    (damaged_metrics.path / "images" / "grid.png").write_bytes(b"not a png at all" * 4)
    damaged_metrics.finish("done")
    bomb = store.create("preimage", {**CONFIG, "seed": 5}, "cpu")
    (bomb.path / "images").mkdir()
    (bomb.path / "images" / "grid.png").write_bytes(_png_header(30_000, 30_000))
    bomb.finish("failed", error="RuntimeError: boom")
    odd_config = store.create("preimage", {**CONFIG, "iters": "lots", "seed": 10**40, "alpha": float("nan")}, "cpu")
    odd_config.finish("done")
    bad = {}
    for name, text in {"empty": "", "invalid": "{\"kind\": ", "a-list": "[1, 2, 3]", "binary": "\udcff\x00"}.items():
        folder = root / f"20000101-000000-{name}"
        folder.mkdir()
        (folder / "run.json").write_text(text, errors="surrogateescape")
        bad[name] = folder
    no_config = root / "20000101-000002-no-config"  # readable, but nothing to reopen
    no_config.mkdir()
    (no_config / "run.json").write_text(json.dumps({"kind": "preimage", "status": "done", "config": "relu3"}))
    dead = root / "20000101-000001-dead"
    dead.mkdir()
    (dead / "run.json").write_text(json.dumps({"kind": "deform", "status": "running", "config": CONFIG,
                                               "started": "2000-01-01T00:00:01", "pid": _dead_pid(),
                                               "host": __import__("socket").gethostname()}))
    (root / "not-a-run").mkdir()  # no run.json: not listed at all
    return {"root": root, "good": good, "damaged_metrics": damaged_metrics.path, "bomb": bomb.path,
            "odd_config": odd_config.path, "bad": bad, "dead": dead, "no_config": no_config}


@pytest.fixture
def dock(qtbot, tmp_path, workspace):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    session = Session(settings, workspace=workspace["root"])
    logged = []
    session.message_logged.connect(lambda level, message: logged.append((level, message)))
    d = RunsDock(session)
    qtbot.addWidget(d)
    qtbot.waitUntil(lambda: d.row_count() > 0 and not d.busy, timeout=30_000)
    d.logged = logged
    yield d
    assert d.shutdown()
    session.shutdown()


def _rows(dock) -> dict[str, dict[str, str]]:
    """Each shown row's cells by column name, keyed by its folder's name."""
    return {Path(p).name: dock.row_cells(p) for p in dock.row_paths()}


def _select(qtbot, dock, path: Path) -> str:
    dock.select_path(None)
    with qtbot.waitSignal(dock.details_shown, timeout=30_000):
        assert dock.select_path(path)
    return dock.metrics.toPlainText()


def test_every_folder_is_a_row_and_the_damaged_ones_are_marked(dock, workspace):
    rows = _rows(dock)
    assert len(rows) == 5 + 4 + 2  # valid runs (incl. damaged metrics/grid/config), damaged run.json, dead owner, no config
    assert "not-a-run" not in rows
    for path in workspace["good"]:
        cells = rows[path.name]
        assert cells["status"] == "✓ done" and cells["kind"] == "invert" and cells["layer"] == "relu3", cells
        assert cells["model"] == "digits-vgg" and cells["C"] == "300"
    assert [rows[p.name]["error"] for p in workspace["good"]] == ["0.25", "0.5"]  # from metrics.json
    for name, folder in workspace["bad"].items():
        assert rows[folder.name]["status"] == "⚠ unreadable", name
    assert rows[workspace["dead"].name]["status"].startswith("↯")  # running, but its process is gone: interrupted
    assert rows[workspace["bomb"].name]["status"].startswith("!")


def test_selecting_any_row_shows_what_can_be_read(dock, qtbot, workspace):
    text = _select(qtbot, dock, workspace["good"][1])
    assert "status: done" in text and "reconstruction_error_mean: 0.5" in text and "C: 300" in text
    assert not dock.preview.pixmap().isNull() and dock.preview.pixmap().width() >= 16

    text = _select(qtbot, dock, workspace["damaged_metrics"])
    assert "status: done" in text and "cannot read the metrics: metrics.json is not valid JSON" in text
    assert "images/grid.png cannot be shown" in dock.preview.text()

    text = _select(qtbot, dock, workspace["bomb"])
    assert "error: RuntimeError: boom" in text
    assert "30000×30000 pixels" in dock.preview.text()  # refused from the header, never decoded

    for name, folder in workspace["bad"].items():
        text = _select(qtbot, dock, folder)
        assert text.startswith("unreadable: ") and "run.json" in text, (name, text)
        assert not dock.reopen_button.isEnabled()

    text = _select(qtbot, dock, workspace["dead"])
    assert text.startswith("status: interrupted")


def test_reopen_takes_valid_fields_only(dock, qtbot, workspace):
    session = dock.session
    _select(qtbot, dock, workspace["good"][0])
    assert dock.reopen() and session.config["seed"] == 1 and session.config["iters"] == 12

    _select(qtbot, dock, workspace["odd_config"])
    assert dock.reopen()
    assert session.config["iters"] == 12 and session.config["seed"] == 1 and session.config["alpha"] == 6.0
    assert any(level == "warning" and "iters, seed, alpha" in m for level, m in dock.logged)

    _select(qtbot, dock, workspace["no_config"])
    assert not dock.reopen_button.isEnabled() and not dock.reopen()
    assert any(level == "error" and "cannot reopen" in m for level, m in dock.logged)


def test_the_gui_thread_reads_no_run_file(dock, qtbot, workspace, monkeypatch):
    """Scanning, metrics and previews are read on the dock's workers, never on the GUI thread."""
    import builtins
    import threading

    opened = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        if threading.current_thread() is threading.main_thread() and str(workspace["root"]) in str(file):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: spy(self, "r").read())
    with qtbot.waitSignal(dock.refreshed, timeout=30_000):
        dock.refresh()
    for path in (workspace["good"][0], workspace["damaged_metrics"], workspace["bad"]["empty"]):
        _select(qtbot, dock, path)
    assert dock.reopen_button.isEnabled() is False
    assert opened == []
