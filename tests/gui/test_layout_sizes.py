"""It fits (issue 20): at 1280 × 720 and at 1920 × 1080 no dock tab title is elided ("R…", "At…")
and every tab of a group is in view without scrolling; the primary buttons (Deformation's
Measure, the Atlas's Compute, the sweep's Run, the Method dock's Run, Paper defaults and
Advanced) are whole on screen when their dock is in front; a restart restores a layout whose live view keeps its room. Each size in a process of its own
whose (offscreen) screen has that size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtWidgets import QTabBar
    from workbench.ui.app import build_window, make_application, wait_for

    app = make_application()
    root = Path(sys.argv[1])

    def settle(seconds=0.6):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents(); time.sleep(0.01)

    def tabs(w):
        out = []
        for bar in w.findChildren(QTabBar, options=Qt.FindChildOption.FindDirectChildrenOnly):
            if not bar.isVisible() or bar.count() == 0:
                continue
            metrics = bar.fontMetrics()
            for i in range(bar.count()):
                rect = bar.tabRect(i)
                out.append({"text": bar.tabText(i), "tab": rect.width(), "need": metrics.horizontalAdvance(bar.tabText(i)),
                            "right": rect.right(), "bar": bar.width(), "elide": int(bar.elideMode().value)})
        return out

    def buttons(w):
        seen = {}
        for dock, button in (("DeformationDock", "run_button"), ("AtlasDock", "compute_button"),
                             ("SweepsDock", "run_button"), ("MethodDock", "run_button"), ("MethodDock", "advanced"),
                             ("MethodDock", "reset_button")):
            w.docks[dock].raise_()
            settle(0.3)
            b = getattr(w.docks[dock], button)
            region = b.visibleRegion().boundingRect()  # the whole button: neither cut below nor at the side
            seen[f"{dock}.{button}"] = (not b.visibleRegion().isEmpty() and region.height() >= b.height() - 1
                                        and region.width() >= b.width() - 1 and b.width() >= b.sizeHint().width())
        w.docks["EnergiesDock"].raise_(); w.docks["FiltersDock"].raise_()
        return seen

    settings = QSettings(str(root / "s.ini"), QSettings.Format.IniFormat)
    w = build_window(settings, workspace=root / "runs")
    w.show()
    assert wait_for(app, lambda: w.session.model is not None, 180), w.session.load_error
    settle()
    first = {"tabs": tabs(w), "buttons": buttons(w), "live": w.live_view.height(), "window": w.height()}
    w.close()
    settle()
    again = build_window(QSettings(str(root / "s.ini"), QSettings.Format.IniFormat), workspace=root / "runs")
    again.show()
    assert wait_for(app, lambda: again.session.model is not None, 180), again.session.load_error
    settle()
    second = {"tabs": tabs(again), "live": again.live_view.height(), "window": again.height()}
    again.close()
    print(json.dumps({"first": first, "second": second}))
""")


@pytest.mark.parametrize("width, height", [(1280, 720), (1920, 1080)])
def test_no_dock_tab_title_is_elided(tmp_path, width, height):
    config = tmp_path / "screen.json"
    config.write_text(json.dumps({"screens": [{"name": "screen", "x": 0, "y": 0, "width": width, "height": height,
                                               "logicalDpi": 96, "dpr": 1}]}))
    env = dict(os.environ, QT_QPA_PLATFORM=f"offscreen:configfile={config}", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for run in ("first", "second"):
        titles = [t["text"] for t in found[run]["tabs"]]
        # every dock that lives in a tab group is named there, whole
        assert {"Layers", "Runs", "Log", "Feature maps and filters", "Sweeps", "Atlas", "Energies", "Deformation",
                "Smoothness", "Filter-GAN"} <= set(titles), (run, titles)
        for tab in found[run]["tabs"]:
            assert tab["elide"] == 3, tab  # Qt.ElideNone: a title is never cut
            assert tab["tab"] >= tab["need"], (run, tab)  # the tab holds its whole title
            assert tab["right"] < tab["bar"], (run, tab)  # and is in view without scrolling
        # the live view keeps its room, also as the restart restores it
        assert found[run]["live"] >= 0.4 * found[run]["window"], (run, found[run]["live"], found[run]["window"])
    assert found["first"]["buttons"] == {"DeformationDock.run_button": True, "AtlasDock.compute_button": True,
                                         "SweepsDock.run_button": True, "MethodDock.run_button": True,
                                         "MethodDock.advanced": True, "MethodDock.reset_button": True}
