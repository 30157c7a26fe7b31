"""The real main window, driven offscreen: load the bundled model, pick a layer, run, cancel,
errors, export, runs, presentation mode. One window for the module (loading costs seconds)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from tests.gui.conftest import python_threads, shown_window, wait_until
from workbench.ui.main_window import DOCKS

SHORT = dict(method="invert", image="digits:0", restarts=1, iters=8, fine_tune_iters=0, seed=0, device="cpu",
             frame_every=2, C=None)


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    with shown_window(qapp, tmp_path_factory.mktemp("window"), size=(1600, 1000)) as win:
        yield win


def run_and_wait(qtbot, window, signal="job_finished", **config):
    session = window.session
    session.update_config(**{**SHORT, **config})
    with qtbot.waitSignal(getattr(session, signal), timeout=120_000) as blocker:
        window.run_action.trigger()
    qtbot.waitUntil(lambda: not session.busy, timeout=30_000)
    return blocker.args[0] if blocker.args else None


def test_opens_with_the_bundled_model(window):
    session = window.session
    assert session.model.name == "digits-vgg" and session.model.trained
    assert "159,978" in window.docks["ModelDock"].card.text()
    tree = window.docks["LayersDock"].tree
    assert tree.topLevelItemCount() == 20
    assert [tree.topLevelItem(0).text(c) for c in range(5)] == ["conv1", "Conv2d", "32 × 32 × 32", "3", "1"]
    assert session.reference == "digits:0"
    assert set(window.docks) == {cls.__name__ for cls in DOCKS}
    assert all(window.docks[name].isVisible() for name in window.docks)
    assert window.isVisible()


def test_layer_search_and_selection(window, qapp):
    dock = window.docks["LayersDock"]
    dock.search.setText("pool")
    visible = [dock.tree.topLevelItem(i).text(0) for i in range(dock.tree.topLevelItemCount())
               if not dock.tree.topLevelItem(i).isHidden()]
    assert visible == ["pool2", "pool4", "pool5"]
    dock.search.clear()
    dock.select("relu1")
    assert window.session.layer == "relu1"
    assert "relu1" in window.docks["MethodDock"].layer.text()
    assert "C = 300" in window.docks["MethodDock"].preset_hint.text()
    wait_until(qapp, lambda: window.docks["FiltersDock"].channels == 32, 60)  # relu1's 32 feature maps


def test_short_inversion_matches_the_cli(window, qtbot, tmp_path):
    from workbench.cli import main as cli

    window.docks["LayersDock"].select("relu1")
    frames_before = window.live_view.frames_received
    result = run_and_wait(qtbot, window)
    assert window.live_view.frames_received > frames_before
    assert window.docks["EnergiesDock"].iterations == list(range(1, 9))
    run = result.run.path
    assert result.run.status == "done"
    for name in ("run.json", "metrics.json", "images/grid.png", "images/restart_1.png", "images/reference.png",
                 "tensors/preimages.safetensors", "tensors/frames.safetensors"):
        assert (run / name).is_file(), name
    assert result.images.shape == (1, 32, 32, 1) and len(result.frames) == 5  # iterations 1, 3, 5, 7 and 8
    assert np.allclose(window.live_view.images, result.images)

    out = tmp_path / "cli"
    assert cli(["invert", "--model", "digits-vgg", "--layer", "relu1", "--sample", "digits:0", "--restarts", "1",
                "--iters", "8", "--fine-tune", "0", "--seed", "0", "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    gui_metrics = json.loads((run / "metrics.json").read_text())
    cli_metrics = json.loads((out / "metrics.json").read_text())
    assert gui_metrics["reconstruction_error"] == pytest.approx(cli_metrics["reconstruction_error"], rel=1e-5)
    assert gui_metrics["C"] == cli_metrics["C"] == 300
    assert "reconstruction error" in window.status_label.text()
    qtbot.waitUntil(lambda: window.docks["RunsDock"].row_count() >= 1, timeout=10_000)  # the scan runs on a worker


def exported(qtbot, export, path, **options):
    """Run one of the window's exports (written on a worker) and wait for the file."""
    with qtbot.waitSignal(export.__self__.exported, timeout=60_000) as blocker:
        assert export(path, **options)
    assert blocker.args == [str(path)]
    return Path(blocker.args[0])


def test_export_grid_and_gif(window, qtbot, tmp_path, monkeypatch):
    assert window.session.last_result is not None
    png = exported(qtbot, window.export_grid, tmp_path / "grid.png", tile=96)
    svg = exported(qtbot, window.export_grid, tmp_path / "grid.svg", tile=96)
    pdf = exported(qtbot, window.export_grid, tmp_path / "grid.pdf", tile=96)
    gif = exported(qtbot, window.export_gif, tmp_path / "opt.gif", fps=4, tile=64)
    assert window.status_label.text() == f"Exported {gif}"
    image = Image.open(png)
    assert image.width > 2 * 96 and image.height > 96
    assert ">restart 1</text>" in svg.read_text() and ">C = 300</text>" in svg.read_text()
    assert ">digits-vgg · relu1 · inversion</text>" in svg.read_text()  # model, layer, method
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with Image.open(gif) as im:
        assert im.n_frames == 5 and im.info["duration"] == 250
    # an existing file is not overwritten unless the user says so
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.No)
    before = png.read_bytes()
    assert window.export_grid(png, tile=200) is False and asked
    assert png.read_bytes() == before
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    assert exported(qtbot, window.export_grid, png, tile=200) == png and png.read_bytes() != before
    # a target that cannot be written is a message, not an exception
    with qtbot.waitSignal(window.exporter.failed, timeout=60_000) as blocker:
        assert window.export_grid(tmp_path / "grid.bmp", tile=32)
    assert "bmp" in blocker.args[0] and "\n" not in blocker.args[0]
    assert window.status_label.text() == blocker.args[0]



def test_copy_and_a_docks_plot_export_draw_on_workers(window, qtbot, qapp, tmp_path):
    """Ctrl+Shift+C and a dock's Export plot… read the plot on the GUI thread; the figure is drawn,
    rendered and written on workers (issue 21), and the clipboard and the file get what they would."""
    assert window.session.last_result is not None  # from the runs above
    assert window.copy_figure()
    qtbot.waitUntil(lambda: "Copied" in window.status_label.text(), timeout=60_000)
    data = qapp.clipboard().mimeData()
    assert bytes(data.data("image/png"))[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in bytes(data.data("image/svg+xml"))
    out = tmp_path / "energies.pdf"
    runner = window.session.plot_exporter
    with qtbot.waitSignal(runner.finished, timeout=60_000) as blocker:
        assert window.docks["EnergiesDock"].export(str(out), overwrite=True, runner=runner) == str(out)
    assert blocker.args == [("plot", str(out))] and out.read_bytes()[:4] == b"%PDF"
    assert not runner.running

def test_plot_export(window, tmp_path):
    dock = window.docks["EnergiesDock"]
    png = dock.export(str(tmp_path / "energies.png"), width=800)
    svg = dock.export(str(tmp_path / "energies.svg"))
    assert Image.open(png).width == 800
    assert "<svg" in open(svg).read()


def test_cancel_mid_run_keeps_a_cancelled_folder(window, qtbot):
    session = window.session
    session.update_config(**{**SHORT, "iters": 100_000, "frame_every": 0})
    window.run_action.trigger()
    qtbot.waitUntil(lambda: window.progress.value() >= 2 and session.run_path is not None, timeout=60_000)
    assert window.cancel_button.isEnabled()
    with qtbot.waitSignal(session.job_cancelled, timeout=30_000):
        window.cancel_action.trigger()
    qtbot.waitUntil(lambda: not session.busy, timeout=30_000)
    info = json.loads((session.run_path / "run.json").read_text())
    assert info["status"] == "cancelled" and info["finished"]
    assert "Cancelled" in window.status_label.text()
    assert not window.cancel_button.isEnabled()


def test_loading_a_model_does_not_wait_behind_a_running_job(window, qtbot, qapp):
    """The model owns its Φ cache and lock: a load (which traces) runs beside a job's forward
    passes, and the previews of the new model (more traces) too; the job then ends as asked."""
    session = window.session
    session.update_config(**{**SHORT, "iters": 100_000, "frame_every": 0})
    window.run_action.trigger()
    qtbot.waitUntil(lambda: window.progress.value() >= 2 and session.run_path is not None, timeout=60_000)
    old = session.model
    with qtbot.waitSignal(session.model_changed, timeout=60_000):
        session.load_model("digits-vgg")
    assert session.model is not old and session.busy  # loaded while the job still runs
    at = window.progress.value()
    qtbot.waitUntil(lambda: window.progress.value() > at, timeout=30_000)  # and the job goes on
    with qtbot.waitSignal(session.job_cancelled, timeout=30_000):
        window.cancel_action.trigger()
    _settle(qapp, window)
    assert json.loads((session.run_path / "run.json").read_text())["status"] == "cancelled"
    assert window.docks["FiltersDock"].channels > 0


def test_a_second_run_is_queued(window, qtbot):
    session = window.session
    session.update_config(**{**SHORT, "iters": 100_000, "frame_every": 0})
    window.run_action.trigger()
    qtbot.waitUntil(lambda: session.busy and session.run_path is not None, timeout=60_000)
    session.update_config(**SHORT)
    window.run_action.trigger()
    assert session.queued and "queued" in window.status_label.text()
    started = []
    session.job_started.connect(started.append)
    session.runner.cancel()  # the first job ends; the queued one starts
    qtbot.waitUntil(lambda: bool(started) and session.last_result is not None and not session.busy, timeout=120_000)
    assert started[0]["iters"] == 8 and session.last_result.run.status == "done"


def test_a_bad_setting_fails_the_job_before_it_writes_anything(window, qtbot):
    session = window.session
    before = {r.path for r in session.store.scan()}
    try:
        message = run_and_wait(qtbot, window, signal="job_failed", mask_channels=(999,))
    finally:
        session.update_config(mask_channels=None)
    assert "out of range" in message and "\n" not in message
    assert window.status_label.text() == f"Failed: {message}"
    assert session.run_path is None and {r.path for r in session.store.scan()} == before  # nothing half-written
    assert any(level == "error" and "out of range" in m for level, m in window.docks["LogDock"].messages)


def test_dropping_a_corrupt_model_file_reports_and_keeps_the_model(window, qtbot, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"this is not a model" * 10)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad))])
    event = QDropEvent(QPointF(400, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    enter = QDragEnterEvent(QPoint(400, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    text = QMimeData()
    text.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.txt"))])
    other = QDragEnterEvent(QPoint(400, 300), Qt.DropAction.CopyAction, text, Qt.MouseButton.NoButton,
                            Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(other)
    assert not other.isAccepted()
    # offscreen Qt delivers no synthetic drops through the event loop; call the handler as Qt would
    with qtbot.waitSignal(window.session.model_failed, timeout=60_000) as blocker:
        window.dropEvent(event)
    assert "broken.safetensors" in blocker.args[0]
    assert "Could not load" in window.status_label.text()
    assert "Could not load" in window.docks["ModelDock"].card.text()
    assert window.session.model.name == "digits-vgg"  # the app stays usable with the model it had
    result = run_and_wait(qtbot, window, iters=2)
    assert result.run.status == "done"


def test_dropping_an_image_sets_the_reference(window, qtbot, tmp_path):
    path = tmp_path / "ref.png"
    Image.fromarray(np.full((20, 20), 200, np.uint8)).save(path)
    window.open_path(str(path))
    assert window.session.reference == str(path)
    qtbot.waitUntil(lambda: window.live_view.reference is not None and window.live_view.reference.mean() > 0.7,
                    timeout=30_000)
    window.session.set_reference("digits:0")


def test_runs_dock_reopens_a_configuration(window, qtbot):
    dock = window.docks["RunsDock"]
    with qtbot.waitSignal(dock.refreshed, timeout=30_000):
        dock.refresh()
    done = [p for p in dock.row_paths() if dock.row_cells(p)["status"].startswith("✓")]
    dock.select_path(None)
    with qtbot.waitSignal(dock.details_shown, timeout=30_000):
        assert dock.select_path(done[0])
    assert "reconstruction_error" in dock.metrics.toPlainText()
    assert dock.preview.pixmap() is not None and not dock.preview.pixmap().isNull()
    config = json.loads(open(dock.selected_path() + "/run.json").read())["config"]
    window.session.update_config(iters=77, seed=5)
    assert dock.reopen()
    method = window.docks["MethodDock"]
    assert method.iters.value() == config["iters"] and method.seed.value() == config["seed"]
    assert window.session.config["iters"] == config["iters"]


def test_feature_map_click_maximizes_that_channel(window, qtbot, qapp):
    window.docks["LayersDock"].select("relu1")
    filters = window.docks["FiltersDock"]
    wait_until(qapp, lambda: filters.channels == 32, 60)
    window.session.update_config(**{**SHORT, "iters": 3})
    with qtbot.waitSignal(window.session.job_finished, timeout=120_000) as blocker:
        filters._on_tile_clicked(5)
    qtbot.waitUntil(lambda: not window.session.busy, timeout=30_000)
    metrics = blocker.args[0].metrics
    assert metrics["method"] == "maximize" and metrics["channel"] == 5
    assert window.docks["MethodDock"].method.currentData() == "maximize"
    assert filters.filters.item.image is not None and filters.filters.item.image.shape[0] > 3
    window.session.update_config(method="invert")


def test_presentation_mode_hides_configuration(window):
    window.toggle_presentation(True)
    shown = {name for name, dock in window.docks.items() if not dock.isHidden()}
    assert shown == {"EnergiesDock"}  # the result and one plot under it: no other plots, no configuration
    assert not ({"ModelDock", "LayersDock", "MethodDock", "FiltersDock", "RunsDock", "LogDock"} & shown)
    assert window.live_view.isVisible() and QApplication.font().pointSizeF() > 12
    window.toggle_presentation(False)
    assert window.docks["MethodDock"].isVisible() and window.docks["LayersDock"].isVisible()


def test_about_lists_versions(window):
    from workbench.ui.main_window import about_text

    text = about_text()
    assert "PySide6" in text and "torch" in text and "cpu" in text


def _rss_mb() -> float:
    """Resident memory of this process (Linux's /proc/self/statm), in MiB."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _settle(qapp, window, timeout=30.0):
    """Wait until no job thread of the window runs (previews, the runs scan) and events are in."""
    import gc

    quiet = 0
    end = time.monotonic() + timeout
    while quiet < 5:  # idle across several rounds of events: nothing queued starts another job
        assert time.monotonic() < end, f"still running: {window.running_threads()}"
        qapp.processEvents()
        quiet = quiet + 1 if window.running_threads() == [] and not window.session.busy else 0
        time.sleep(0.01)
    gc.collect()


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="RSS is read from /proc")
def test_soak_200_start_cancel_cycles_through_the_window(window, qtbot, qapp, record_property):
    """Run, then Esc, 200 times with real pre-image jobs: every job stops, memory stays flat, no
    thread is left, the run folders say cancelled (or done), and the window still works."""
    session = window.session
    session.update_config(**{**SHORT, "iters": 100_000, "frame_every": 0})
    earlier = {r.path for r in session.store.scan()}  # the module's window has run other tests' jobs
    stopped, failed = [], []
    session.job_stopped.connect(lambda: stopped.append(1))
    session.job_failed.connect(failed.append)

    def cycles(n):
        for _ in range(n):
            with qtbot.waitSignal(session.job_stopped, timeout=60_000):
                window.run_action.trigger()
                assert window.cancel_action.isEnabled()
                window.cancel_action.trigger()

    cycles(20)  # warm-up: the allocator's pools, Qt's and torch's caches fill once
    _settle(qapp, window)
    threads_before, rss_before = python_threads(), _rss_mb()
    start = time.monotonic()
    cycles(200)
    seconds = time.monotonic() - start
    _settle(qapp, window)
    growth = _rss_mb() - rss_before
    record_property("rss_growth_mb", round(growth, 1))
    record_property("seconds_for_200_cycles", round(seconds, 1))
    print(f"\n200 start/cancel cycles: {seconds:.1f} s, resident memory {rss_before:.0f} MiB → "
          f"{rss_before + growth:.0f} MiB ({growth:+.1f} MiB), job threads left {len(window.running_threads())}")
    assert len(stopped) == 220 and failed == [] and not session.busy
    assert window.running_threads() == [] and python_threads() <= threads_before
    assert growth < 50, f"resident memory grew by {growth:.1f} MiB over 200 cycles"
    rows = [r for r in session.store.scan() if r.path not in earlier]
    assert len(rows) >= 200  # a cancel that lands before the job's run folder exists leaves none
    assert {r.status for r in rows} <= {"cancelled", "done"}, {r.status for r in rows}
    result = run_and_wait(qtbot, window, iters=2)  # and the window still works
    assert result.run.status == "done"


def _raising_job(exc, before_first_step=False):
    """A fake pre-image job: claims its run folder, then raises ``exc`` (through the one
    finalisation path, like every real job)."""
    from workbench.jobs import Artifact, Step
    from workbench.runs import finalise

    def make(config, model, store):
        def factory(cancel):
            run = store.create("preimage", config, "cpu")

            def body():
                yield Artifact("run", str(run.path))
                if not before_first_step:
                    yield Step(1, 3, {"energy": 1.0})
                raise exc

            return finalise(run, body())

        return factory

    return make


@pytest.mark.parametrize("exc, early", [(RuntimeError("boom"), False), (KeyboardInterrupt(), False),
                                        (SystemExit(3), False), (GeneratorExit(), False), (SystemExit(), True),
                                        (KeyboardInterrupt(), True), (MemoryError("no room"), True)],
                         ids=["RuntimeError", "KeyboardInterrupt", "SystemExit", "GeneratorExit",
                              "SystemExit-at-once", "KeyboardInterrupt-at-once", "MemoryError-at-once"])
def test_a_job_raising_anything_fails_and_the_next_one_runs(window, qtbot, monkeypatch, exc, early):
    session = window.session
    monkeypatch.setattr(session, "make_job", _raising_job(exc, early))
    message = run_and_wait(qtbot, window, signal="job_failed")
    name = type(exc).__name__
    assert message.startswith(name)
    assert window.status_label.text().startswith("Failed: " + name)
    info = json.loads((session.run_path / "run.json").read_text())
    assert info["status"] == "failed" and name in info["error"]
    assert not window.cancel_action.isEnabled() and not session.busy
    monkeypatch.undo()
    result = run_and_wait(qtbot, window, iters=2)
    assert result.run.status == "done" and "Done" in window.status_label.text()


def test_building_and_showing_the_window_imports_no_torch(tmp_path):
    """The window is on screen before torch is imported: torch loads with the model, on a worker."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from PySide6.QtCore import QSettings\n"
        "from workbench.ui.app import make_application, build_window\n"
        "app = make_application([])\n"
        f"settings = QSettings({str(tmp_path / 's.ini')!r}, QSettings.Format.IniFormat)\n"
        f"window = build_window(settings, workspace={str(tmp_path / 'ws')!r}, load=False)\n"
        "window.show()\n"
        "sys.exit(1 if 'torch' in sys.modules else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert r.returncode == 0, "torch was imported while the window was built: " + r.stderr[-500:]


class _EventCounter:
    """Counts Qt events of the given types per receiver class while installed on the app."""

    def __init__(self, qapp, *types):
        from collections import Counter

        from PySide6.QtCore import QObject

        counts = self.counts = Counter()

        class Filter(QObject):
            def eventFilter(self, obj, event):
                if event.type() in types:
                    counts[(event.type().name, type(obj).__name__)] += 1
                return False

        self._filter = Filter()
        self._app = qapp

    def __enter__(self):
        self._app.installEventFilter(self._filter)
        return self.counts

    def __exit__(self, *exc):
        self._app.removeEventFilter(self._filter)


def test_idle_window_repaints_nothing(window, qapp):
    """The status bar's busy bar (indeterminate while the model loads) is hidden afterwards:
    Fusion kept animating it at 60 repaints a second through every later job."""
    from PySide6.QtCore import QEvent

    assert window.progress.maximum() > 0  # determinate: hidden since the model loaded, or a job's progress
    wait_until(qapp, lambda: not window.session.busy, 30)

    def spin(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            qapp.processEvents()
            time.sleep(0.01)

    spin(1.0)  # reference image, feature maps and filters settle
    with _EventCounter(qapp, QEvent.Type.Paint) as counts:
        spin(1.0)
    assert counts[("Paint", "QProgressBar")] == 0, counts
    assert counts[("Paint", "QStatusBar")] <= 2, counts  # the animation repainted it 60 times a second


def test_live_updates_neither_relayout_nor_move_the_axes(window, qtbot, qapp):
    """Per update of a running job: no layout pass of the window (the counters are fixed-size
    labels), and the energy plot's range steps a few times per run, not at every redraw."""
    from PySide6.QtCore import QEvent
    from PySide6.QtWidgets import QGraphicsItem

    energies = window.docks["EnergiesDock"]
    axis = energies.plot.getPlotItem().getAxis("left")
    assert axis.cacheMode() == QGraphicsItem.CacheMode.DeviceCoordinateCache
    ranges, updates = [], []
    energies.plot.getViewBox().sigRangeChanged.connect(lambda _vb, r, *_a: ranges.append(r))
    window.session.job_progressed.connect(updates.append)
    try:
        with _EventCounter(qapp, QEvent.Type.LayoutRequest) as counts:
            run_and_wait(qtbot, window, layer="relu3", iters=3000, restarts=1, snapshot_every=1)
    finally:
        window.session.job_progressed.disconnect(updates.append)
    assert len(updates) >= 20
    # a few at the start and the end of the job (status text, buttons), none per update
    assert counts[("LayoutRequest", "MainWindow")] + counts[("LayoutRequest", "QStatusBar")] <= 10, counts
    assert 1 <= len(ranges) <= 12, len(ranges)
    x_range = energies.plot.getViewBox().viewRange()[0]
    assert x_range[0] <= 1 and x_range[1] >= 3000
    assert energies.plot.getViewBox().autoRangeEnabled()[0]  # auto-range is back once the job ends
