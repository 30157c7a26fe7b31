"""The window fits the screen and tells the truth (issue 10): it opens on the screen's available
area, its docks fit a 1280 × 720 screen whatever is loaded or chosen, it never grows past the
screen, a saved geometry comes back only where it fits, and the header and the status bar say
what happened to the last job (cancelled, where) and describe what is shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtCore import QRect, QSettings

from tests.gui.conftest import shown_window, wait_until
from workbench.ui.app import build_window

#: A projector. With a window manager's frame and panel the window has a little less.
SCREEN = (1280, 720)
FRAME = (16, 64)  # the room a frame and a panel may take


def docks_need(window):
    """What the window's layout needs to show every dock at its minimum size."""
    window.layout().activate()
    return window.layout().totalMinimumSize()


def assert_fits(window, what: str) -> None:
    need = docks_need(window)
    assert need.width() <= SCREEN[0] - FRAME[0] and need.height() <= SCREEN[1] - FRAME[1], \
        f"{what}: the docks need {need.width()} × {need.height()}, more than a {SCREEN[0]} × {SCREEN[1]} screen"
    area = window.available_geometry()
    # whatever the layout would like, the window stays on its screen (here Qt's offscreen 800 × 600)
    assert window.minimumWidth() <= area.width() and window.minimumHeight() <= area.height(), what
    assert window.width() <= area.width() and window.height() <= area.height(), \
        f"{what}: the window grew to {window.width()} × {window.height()} on a {area.width()} × {area.height()} screen"


def settle(qapp, seconds: float = 0.5) -> None:
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        qapp.processEvents()
        time.sleep(0.01)


@pytest.fixture(scope="module")
def window(qapp, tmp_path_factory):
    with shown_window(qapp, tmp_path_factory.mktemp("fit")) as win:
        yield win


def test_opens_on_the_available_area(window):
    # the whole frame on the available area (offscreen Qt fakes a 2 px frame)
    assert window.frameGeometry() == window.available_geometry()


def test_fits_after_act_max_resnet18_and_a_long_path(window, qapp, tmp_path):
    session = window.session
    assert_fits(window, "digits-vgg")
    session.update_config(method="maximize", channel=3)
    settle(qapp)
    assert_fits(window, "activation maximization")
    session.update_config(method="invert")
    session.load_model("resnet18")  # untrained torchvision architecture: nothing downloaded
    wait_until(qapp, lambda: session.model is not None and session.model.name == "resnet18", 180)
    wait_until(qapp, lambda: window.docks["FiltersDock"].channels > 0, 120)  # its feature maps
    session.update_config(method="maximize")
    settle(qapp)
    assert_fits(window, "resnet18, activation maximization")
    assert window.docks["FiltersDock"].minimumSizeHint().width() < 300
    long = tmp_path / ("a-long-folder-name-" * 8) / ("and-a-long-file-name-" * 6 + ".safetensors")
    long.parent.mkdir(parents=True)
    long.write_bytes(b"not a model")
    session.load_model(str(long))
    wait_until(qapp, lambda: session.load_error is not None, 60)
    settle(qapp)
    assert long.name in window.status_label.text()  # said in full, drawn elided
    assert_fits(window, "a long model path")
    session.update_config(method="invert")
    session.load_model("digits-vgg")
    wait_until(qapp, lambda: session.model is not None and session.model.name == "digits-vgg", 120)


def test_smoothness_plot_with_models_added_still_fits(window, qapp):
    dock = window.docks["SmoothnessDock"]
    metrics = {"layers": [{"layer": f"features.{i}.conv_with_a_long_name", "ntv": 1.0 + i / 10} for i in range(20)],
               "init_ntv": 1.8}
    for k in range(6):
        dock.add_result(f"/a/long/path/to/model-number-{k}-with-a-long-name.safetensors", metrics)
    settle(qapp)
    assert_fits(window, "six models on the smoothness plot")
    dock.clear()


def test_the_header_says_cancelled_after_a_cancel_and_counters_reset(window, qtbot):
    session = window.session
    session.update_config(method="invert", layer="relu3", image="digits:0", restarts=1, iters=100_000,
                          fine_tune_iters=0, device="cpu", seed=0, frame_every=0)
    window.run_action.trigger()
    qtbot.waitUntil(lambda: window.live_view.stage.text().startswith("iteration ") and window.progress.value() >= 2,
                    timeout=60_000)
    with qtbot.waitSignal(session.job_cancelled, timeout=30_000):
        window.cancel_action.trigger()
    qtbot.waitUntil(lambda: not session.busy, timeout=30_000)
    stage = window.live_view.stage.text()
    assert stage.startswith("cancelled at iteration ") and "optimizing" not in stage, stage
    assert window.status_label.text().startswith("Cancelled at iteration "), window.status_label.text()
    assert window.timing.text().endswith("cancelled"), window.timing.text()
    # the next job starts from zero: no counter or bar of the last one
    session.update_config(iters=5, restarts=1)
    started = []
    session.job_started.connect(lambda _c: started.append((window.progress.value(), window.timing.text(),
                                                           window.live_view.stage.text())))
    with qtbot.waitSignal(session.job_finished, timeout=120_000):
        window.run_action.trigger()
    qtbot.waitUntil(lambda: not session.busy, timeout=30_000)
    assert started[0] == (0, "", "starting…")
    assert window.live_view.stage.text() == "done"


def test_the_header_follows_the_method_dock_and_names_the_result_shown(window, qtbot, qapp):
    """Issue 20: the header said "Inversion" after switching the method until Run. It names the
    selected method at once, and says which result the images shown are until Run."""
    from PySide6.QtGui import QTextDocument

    def header_lines():
        doc = QTextDocument()
        doc.setHtml(window.live_view.header.text())
        return doc.toPlainText().splitlines()

    session = window.session
    session.update_config(method="invert", layer="relu3", iters=5, restarts=2, fine_tune_iters=0, frame_every=0)
    with qtbot.waitSignal(session.job_finished, timeout=120_000):
        window.run_action.trigger()
    qtbot.waitUntil(lambda: not session.busy, timeout=30_000)
    title, details = header_lines()
    assert title == "Inversion" and "relu3" in details and "2 restart(s)" in details
    method = window.docks["MethodDock"].method
    method.setCurrentIndex(method.findData("maximize"))  # as the user switches it
    qapp.processEvents()
    assert session.config["method"] == "maximize"
    title, shown = header_lines()
    assert title.startswith("Activation maximization · channel"), title
    assert shown.startswith("not run yet (Ctrl+R) · shown: Inversion") and "relu3" in shown, shown  # the inversion's images
    assert window.live_view.stage.text().startswith("settings changed")
    method.setCurrentIndex(method.findData("caricature"))
    qapp.processEvents()
    assert header_lines()[0].startswith("Caricature")
    method.setCurrentIndex(method.findData("invert"))  # back to what is shown: one plain header again
    qapp.processEvents()
    assert header_lines() == ["Inversion", details]
    assert window.live_view.stage.text() == "done"


def test_saved_geometry_comes_back_only_where_it_fits(qapp, tmp_path):
    probe = build_window(QSettings(str(tmp_path / "probe.ini"), QSettings.Format.IniFormat), load=False)
    area = probe.available_geometry()
    probe.close()
    inside = QRect(area.x(), area.y() + 20, area.width(), area.height() - 60)  # not below the docks' minimum
    for rect, expect_restored in ((inside, True), (QRect(0, 0, area.width() + 600, area.height() + 400), False)):
        path = str(tmp_path / f"{rect.width()}.ini")
        first = build_window(QSettings(path, QSettings.Format.IniFormat), workspace=tmp_path / "runs", load=False)
        first.setMinimumSize(0, 0)
        first.setGeometry(rect)
        first.save_settings()
        first.close()
        second = build_window(QSettings(path, QSettings.Format.IniFormat), workspace=tmp_path / "runs", load=False)
        try:
            if expect_restored:
                assert second.geometry().size() == rect.size()
            else:
                assert second.geometry() == area  # a layout from a bigger screen: the default instead
        finally:
            second.close()


def test_opens_on_a_1280x720_screen_and_stays_there(tmp_path):
    """In a process of its own whose (offscreen) screen is 1280 × 720: the window opens on all of
    it, and neither activation maximization nor resnet18 makes it any bigger."""
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "projector", "x": 0, "y": 0, "width": 1280, "height": 720,
                                               "logicalDpi": 96, "dpr": 1}]}))
    script = textwrap.dedent(f"""
        import json, time
        from pathlib import Path
        from PySide6.QtCore import QSettings
        from workbench.ui.app import build_window, make_application, wait_for
        app = make_application()
        root = Path({str(tmp_path)!r})
        w = build_window(QSettings(str(root / "s.ini"), QSettings.Format.IniFormat), workspace=root / "runs",
                         model="resnet18")
        w.show()
        sizes = {{}}
        def settle():
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                app.processEvents(); time.sleep(0.01)
        def note(name):
            settle()
            need = w.layout().totalMinimumSize()
            frame = w.frameGeometry()
            sizes[name] = [frame.width(), frame.height(), need.width(), need.height()]
        note("opened")
        assert wait_for(app, lambda: w.session.model is not None, 180), w.session.load_error
        assert wait_for(app, lambda: w.docks["FiltersDock"].channels > 0, 120)
        note("resnet18")
        w.session.update_config(method="maximize")
        note("act-max")
        area = w.available_geometry()
        sizes["screen"] = [area.width(), area.height()]
        w.close()
        print(json.dumps(sizes))
    """)
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    sizes = json.loads(done.stdout.strip().splitlines()[-1])
    assert sizes["screen"] == [1280, 720]
    for name in ("opened", "resnet18", "act-max"):
        width, height, need_w, need_h = sizes[name]
        assert (width, height) == (1280, 720), (name, sizes)  # the frame, on all of the screen
        assert need_w <= 1280 - FRAME[0] and need_h <= 720 - FRAME[1], (name, sizes)
