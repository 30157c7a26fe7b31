"""Make docs/screenshot.png: the workbench at 1600×1000 after a short inversion.

    xvfb-run -s "-screen 0 1600x1000x24" python scripts/screenshot.py [--out docs/screenshot.png]

(``QT_QPA_PLATFORM=offscreen python scripts/screenshot.py`` works too.) Uses a temporary
workspace and settings, so the user's own are not touched.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshot.png")
    parser.add_argument("--layer", default="relu3")
    parser.add_argument("--iters", type=int, default=150)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--theme", default="light", choices=("light", "dark"))
    args = parser.parse_args()

    from PySide6.QtCore import QSettings

    from workbench.ui.app import build_window, make_application, wait_for

    app = make_application()
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        settings.setValue("theme", args.theme)
        window = build_window(settings, workspace=Path(tmp) / "runs")
        window.resize(1600, 1000)
        window.show()
        session = window.session
        try:
            if not wait_for(app, lambda: session.model is not None or session.load_error is not None, 120) or session.model is None:
                print(f"screenshot: the model did not load: {session.load_error}", file=sys.stderr)
                return 1
            session.update_config(layer=args.layer, method="invert", image="digits:0", iters=args.iters,
                                  restarts=args.restarts, device="cpu", seed=0, frame_every=10)
            window.run_action.trigger()
            if not wait_for(app, lambda: session.last_result is not None and not session.busy, 600):
                print("screenshot: the inversion did not finish", file=sys.stderr)
                return 1
            window.docks["RunsDock"].list.setCurrentRow(0)
            window.docks["FiltersDock"].raise_()
            wait_for(app, lambda: window.docks["FiltersDock"].channels > 0, 30)
            for _ in range(20):
                app.processEvents()
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            window.grab().save(str(out))
            print(out)
        finally:
            window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
