"""Render the workbench's screenshots into docs/screenshots/: 1280×720, 1600×1000 and 1920×1080
screens, a 2× high-DPI screen, light and dark, presentation mode (F11), and the ImageNet net
(EfficientNet-Lite0: an inversion of the cat photo and a maximisation of class 285, at 1280×720
and 1920×1080 and in presentation mode; about a minute of CPU each).

    xvfb-run python scripts/screenshots.py --out docs/screenshots [--only NAME ...]

Each screenshot is taken in its own process on its own screen: under an X server of that size
(``xvfb-run`` per shot, when it is installed) or else Qt's offscreen platform given that screen.
The window opens as a user's would (sized to the screen's available area); the script fails if
it does not fit its screen. A short inversion of the bundled digits model fills the views.
Temporary settings and workspace: the user's own are not touched.

Apt packages for the X server: xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: name → (screen width, height in device pixels, scale factor, theme, presentation mode, scene)
SHOTS = {
    "1280x720-light": (1280, 720, 1, "light", False, "inversion"),
    "1280x720-dark": (1280, 720, 1, "dark", False, "inversion"),
    "1280x720-resnet18": (1280, 720, 1, "light", False, "resnet18"),
    "1600x1000-light": (1600, 1000, 1, "light", False, "inversion"),
    "1600x1000-dark": (1600, 1000, 1, "dark", False, "inversion"),
    "hidpi-2x-light": (2560, 1440, 2, "light", False, "inversion"),
    "hidpi-2x-dark": (2560, 1440, 2, "dark", False, "inversion"),
    "presentation-1280x720-light": (1280, 720, 1, "light", True, "inversion"),
    "presentation-1280x720-dark": (1280, 720, 1, "dark", True, "inversion"),
    "presentation-1600x1000-light": (1600, 1000, 1, "light", True, "inversion"),
    "1920x1080-light": (1920, 1080, 1, "light", False, "inversion"),
    # the ImageNet net (EfficientNet-Lite0, trained): an inversion and an activation maximisation
    "1280x720-imagenet-inversion": (1280, 720, 1, "light", False, "imagenet-inversion"),
    "1920x1080-imagenet-inversion": (1920, 1080, 1, "light", False, "imagenet-inversion"),
    "1280x720-imagenet-maximisation": (1280, 720, 1, "light", False, "imagenet-maximisation"),
    "1920x1080-imagenet-maximisation": (1920, 1080, 1, "dark", False, "imagenet-maximisation"),
    "presentation-1280x720-imagenet": (1280, 720, 1, "light", True, "imagenet-inversion"),
    "presentation-1920x1080-imagenet": (1920, 1080, 1, "dark", True, "imagenet-maximisation"),
}
#: The ImageNet net of the imagenet scenes, and what each one runs (short: screenshots, not results).
IMAGENET = "efficientnet-lite0"
IMAGENET_SCENES = {
    "imagenet-inversion": dict(layer="_blocks.9.add", method="invert", image="chelsea", iters=40, restarts=2,
                               fine_tune_iters=0),
    "imagenet-maximisation": dict(layer="_fc", method="maximize", channel=285, iters=40, restarts=2),
}


def child_command(name: str, out: Path, tmp: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment that take screenshot ``name`` on a screen of its own."""
    width, height, scale, *_ = SHOTS[name]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    env.pop("QT_QPA_PLATFORM", None)
    env.pop("QT_SCREEN_SCALE_FACTORS", None)
    env["QT_SCALE_FACTOR"] = str(scale)
    command = [sys.executable, str(Path(__file__).resolve()), "--shot", name, "--out", str(out)]
    if shutil.which("xvfb-run"):
        return ["xvfb-run", "-a", "-s", f"-screen 0 {width}x{height}x24 -dpi 96"] + command, env
    config = tmp / f"{name}.json"
    config.write_text(json.dumps({"screens": [{"name": "screen", "x": 0, "y": 0, "width": width // scale,
                                               "height": height // scale, "logicalDpi": 96, "dpr": scale}]}))
    env["QT_QPA_PLATFORM"] = f"offscreen:configfile={config}"
    env.pop("QT_SCALE_FACTOR")  # the configfile's dpr is the scale
    return command, env


def spin(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def take(name: str, out: Path) -> int:
    """In this process: open the window on this screen, fill it, save ``out/name.png``."""
    width, height, scale, theme_name, presenting, scene = SHOTS[name]
    from PySide6.QtCore import QSettings

    from workbench.ui.app import build_window, make_application, wait_for

    app = make_application()
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        settings.setValue("theme", theme_name)
        model = {"resnet18": "resnet18", **{k: IMAGENET for k in IMAGENET_SCENES}}.get(scene)
        window = build_window(settings, workspace=Path(tmp) / "runs", model=model)
        window.show()
        session = window.session
        try:
            if not wait_for(app, lambda: session.model is not None or session.load_error is not None, 180) \
                    or session.model is None:
                print(f"{name}: the model did not load: {session.load_error}", file=sys.stderr)
                return 1
            if scene in IMAGENET_SCENES:
                session.update_config(device="cpu", seed=0, frame_every=10, **IMAGENET_SCENES[scene])
                window.run_action.trigger()
                if not wait_for(app, lambda: session.last_result is not None and not session.busy, 900):
                    print(f"{name}: the {scene} did not finish", file=sys.stderr)
                    return 1
                wait_for(app, lambda: window.docks["FiltersDock"].channels > 0, 120)
            elif scene == "resnet18":
                session.update_config(layer="layer2.0.relu", method="invert", image="astronaut", restarts=2)
                wait_for(app, lambda: window.docks["FiltersDock"].channels > 0, 120)
            else:
                session.update_config(layer="relu3", method="invert", image="digits:0", iters=150, restarts=4,
                                      device="cpu", seed=0, frame_every=10)
                window.run_action.trigger()
                if not wait_for(app, lambda: session.last_result is not None and not session.busy, 600):
                    print(f"{name}: the inversion did not finish", file=sys.stderr)
                    return 1
                window.docks["LayersDock"].select("relu3")
                wait_for(app, lambda: window.docks["FiltersDock"].channels > 0, 60)
            if presenting:
                window.toggle_presentation(True)
            spin(app, 1.5)
            screen = window.screen()
            area = screen.geometry() if presenting else screen.availableGeometry()
            frame = window.frameGeometry()
            fits = area.contains(frame) and window.minimumWidth() <= area.width() and window.minimumHeight() <= area.height()
            path = out / f"{name}.png"
            window.grab().save(str(path))
            print(f"{path}: screen {area.width()}x{area.height()} at {screen.devicePixelRatio():g}x, window "
                  f"{frame.width()}x{frame.height()}, minimum {window.minimumWidth()}x{window.minimumHeight()}"
                  f"{'' if fits else '  DOES NOT FIT'}")
            return 0 if fits else 1
        finally:
            if presenting:
                window.toggle_presentation(False)
            window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/screenshots", help="folder for the PNGs (default docs/screenshots)")
    parser.add_argument("--only", nargs="*", choices=sorted(SHOTS), help="just these screenshots")
    parser.add_argument("--shot", choices=sorted(SHOTS), help=argparse.SUPPRESS)  # one, in this process
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.shot:
        return take(args.shot, out)
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or SHOTS:
            command, env = child_command(name, out, Path(tmp))
            if subprocess.run(command, env=env).returncode != 0:
                failed.append(name)
    if failed:
        print(f"screenshots failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
