"""Make every figure of docs/figures.md with the command line, at a paper column and a slide.

    python docs/figures/make_figures.py [RUNS_DIR]

Each figure is a run folder's ``images/<name>.png`` (a ``.pdf`` lies beside it), written by the
``workbench`` command shown in docs/figures.md, copied here as ``<figure>-<size>.png``. The
run folders go to RUNS_DIR (default: a new temporary folder). Sizes are kept small for the
repository: the column at 200 dpi (700 px wide), the slide at 96 dpi (1280 x 720); a paper's
figures use the defaults (300 dpi; 1920 x 1080 for a slide) or the PDF.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {"column": 200, "slide": 96}
SHIPPED = "resources/filtergan/digits-vgg-conv4"

#: (figure, command, the run's images to copy: {png name: figure name})
FIGURES = [
    ("invert", ["invert", "--model", "digits-vgg", "--layer", "relu3", "--sample", "digits:0", "--restarts", "4",
                "--iters", "150", "--frames", "10"], {"grid": "invert"}),
    ("imagenet-invert", ["invert", "--model", "efficientnet-lite0", "--layer", "_blocks.9.add", "--sample", "chelsea",
                         "--restarts", "2", "--iters", "40"], {"grid": "imagenet-invert"}),
    ("maximize", ["maximize", "--model", "digits-vgg", "--layer", "relu5", "--channel", "3", "--restarts", "4",
                  "--iters", "150"], {"grid": "maximize"}),
    ("demo", ["demo", "--iters", "60"], {"grid": "demo"}),
    ("deform", ["deform", "--model", "digits-vgg", "--n", "64", "--seeds", "3"],
     {"sensitivity": "sensitivity", "pairs": "pairs"}),
    ("smoothing", ["study", "smoothing", "--seeds", "2", "--n", "32"], {"smoothing": "study-smoothing"}),
    ("pooling", ["study", "pooling", "--seeds", "1", "--epochs", "1", "--n", "32"],
     {"pooling_init": "study-pooling-init", "pooling_trained": "study-pooling-trained"}),
    ("synthetic", ["study", "synthetic", "--seeds", "2", "--epochs", "1"],
     {"synthetic_examples": "study-synthetic-examples", "synthetic_smoothness": "study-synthetic-smoothness",
      "synthetic_by_strength": "study-synthetic-by-strength"}),
    ("train", ["filtergan", "train", "--model", "digits-vgg", "--layer", "conv4", "--steps", "300"],
     {"losses": "filtergan-losses"}),
    ("eval", ["filtergan", "eval", SHIPPED, "--retrain-epochs", "1"], {"mds": "filtergan-mds"}),
    ("traverse", ["filtergan", "traverse", SHIPPED, "--grid", "5", "--iters", "60"], {"grid": "filtergan-traversal"}),
]


def main() -> int:
    runs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="workbench-figures-"))
    runs.mkdir(parents=True, exist_ok=True)
    report = []
    for size, dpi in SIZES.items():
        for name, args, images in FIGURES:
            out = runs / f"{name}-{size}"
            if not (out / "run.json").is_file():
                started = time.monotonic()
                command = ["workbench", *args, "--device", "cpu", "--out", str(out), "--figure-size", size,
                           "--figure-dpi", str(dpi)]
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                report.append((f"{name}-{size}", round(time.monotonic() - started, 1)))
            for png, figure in images.items():
                shutil.copyfile(out / "images" / f"{png}.png", HERE / f"{figure}-{size}.png")
        _smoothness(runs, size, dpi)
    _animation(runs, "column")  # a page's style at 96-pixel tiles; a slide's GIF (1280 x 720) is too large to keep
    for name, seconds in report:
        print(f"{name}: {seconds} s")
    print(json.dumps({p.name: p.stat().st_size for p in sorted(HERE.glob("*.png"))}, indent=1))
    return 0


def _smoothness(runs: Path, size: str, dpi: int) -> None:
    """The Smoothness dock's figure (no CLI command writes it): smoothness_job on two models."""
    from workbench.deformation.job import smoothness_job, smoothness_plot_of_runs
    from workbench.export.render import save
    from workbench.export.style import FigureStyle
    from workbench.jobs import run_job
    from workbench.models import load_model

    style = FigureStyle(size, dpi)
    results = []
    for name in ("digits-vgg", "cifar-vgg-maxpool"):
        out = runs / f"smoothness-{name}-{size}"
        if (out / "metrics.json").is_file():
            results.append((name, json.loads((out / "metrics.json").read_text())))
            continue
        results.append((name, run_job(smoothness_job(load_model(name, device="cpu"), out=out, figure=style))))
    target = HERE / f"smoothness-{size}.png"
    target.unlink(missing_ok=True)
    save(smoothness_plot_of_runs(results, style), target, style)


def _animation(runs: Path, size: str) -> None:
    """The window's Export → Optimization — animated GIF, from the invert run's kept frames."""
    from safetensors.numpy import load_file

    from workbench.export.animation import save_animation
    from workbench.export.style import FigureStyle

    run = runs / f"invert-{size}"
    frames = load_file(str(run / "tensors" / "frames.safetensors"))["frames"].astype("float32") / 255.0
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "run.json").read_text())["config"]
    fine_tune = config.get("fine_tune_iters")
    if fine_tune is None:
        from workbench.preimage.presets import FINE_TUNE_ITERS as fine_tune
    steps = int(config["iters"]) + int(fine_tune)
    kept = [t + 1 for t in range(steps) if t % 10 == 0 or t == steps - 1][:len(frames)]
    target = HERE / "animation.gif"
    target.unlink(missing_ok=True)
    save_animation(list(frames[::2]), target, fps=4, tile=96, iterations=kept[::2], style=FigureStyle("page"),
                   title=f"{metrics['model']} · {metrics['layer']} · inversion")


if __name__ == "__main__":
    sys.exit(main())
