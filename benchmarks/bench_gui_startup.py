"""Time to window and time to ready for ``workbench``, against a bare Qt window.

    python benchmarks/bench_gui_startup.py [--repeat 3]

Each measurement is a fresh process (offscreen Qt unless a display is set):
  bare     Python start → an empty QMainWindow shown (the floor any PySide6 app pays),
  window   Python start → the workbench window shown (goal ≤ 1.5 s), torch not yet imported,
  ready    Python start → digits-vgg loaded on the worker and the window ready to Run.
Prints the medians and window/bare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

BARE = """
import time, sys
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
w = QMainWindow(); w.resize(1600, 1000); w.show(); app.processEvents()
print("WINDOW", time.time(), flush=True)
"""

WORKBENCH = """
import time, sys, tempfile
from pathlib import Path
import workbench.ui.main_window as main_window
main_window.DOCKS[:] = [d for d in main_window.DOCKS if d.__name__ not in SKIP]
from workbench.ui.app import build_window, make_application, wait_for
from PySide6.QtCore import QSettings
app = make_application()
tmp = tempfile.mkdtemp()
window = build_window(QSettings(str(Path(tmp) / "s.ini"), QSettings.Format.IniFormat), workspace=Path(tmp) / "runs")
early_torch = "torch" in sys.modules
window.resize(1600, 1000); window.show(); app.processEvents()
print("WINDOW", time.time(), early_torch, flush=True)
wait_for(app, lambda: window.session.model is not None and window.docks["FiltersDock"].channels > 0, 300)
print("READY", time.time(), flush=True)
window.close()
"""


def measure(code: str) -> dict:
    env = dict(os.environ)
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    start = time.time()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    times = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in ("WINDOW", "READY"):
            times[parts[0].lower()] = float(parts[1]) - start
            if parts[0] == "WINDOW":
                times["torch_first"] = len(parts) > 2 and parts[2] == "True"
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-dock", nargs="*", default=[], metavar="CLASS",
                    help="leave these docks out (to find which one slows the start)")
    args = ap.parse_args()
    code = f"SKIP = {tuple(args.skip_dock)!r}\n" + WORKBENCH
    bare, window, ready, early = [], [], [], False
    for _ in range(args.repeat):
        bare.append(measure(BARE)["window"])
        t = measure(code)
        window.append(t["window"])
        early |= t["torch_first"]
        ready.append(t["ready"])
    b, w, r = (statistics.median(v) for v in (bare, window, ready))
    print(f"bare Qt window        {b:6.2f} s   (median of {args.repeat})")
    print(f"workbench window      {w:6.2f} s   goal ≤ 1.5 s: {'met' if w <= 1.5 else 'NOT met'}")
    print(f"workbench ready       {r:6.2f} s   (digits-vgg loaded, feature maps shown)")
    print(f"window / bare         {w / b:6.2f}")
    if early:
        print("WARNING: torch was imported on the GUI thread before the window was shown "
              "(a dock imports it while being built): the window waits for torch")


if __name__ == "__main__":
    main()
