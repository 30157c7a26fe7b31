"""A HOG template seen two ways: IJCV 2016 Fig. 15 (sect. 6.1).

A HOG template is a linear filter w on HOG cells; its score is Φ(x) = ⟨w, Φ_HOG(x)⟩, "a CNN consisting of
the HOG CNN Φ_HOG followed by a linear projection layer of parameter w". The paper visualises DPM v5
templates of VOC 2010 classes two ways:

- **activation maximisation** (sect. 6.1): the loss −⟨Φ(x), 1⟩/Z of eq. 4 in the objective (1), with
  Z = Mρ² (eq. 9), ρ = max{H, W} and M = ⟨|w|, Φ_HOG(x)⟩ for x a white-noise image;
- **HOGgle** (Vondrick et al. 2013 Fig. 14): the paired-dictionary inverse of the rectified template
  w₊ = max{0, w} (:mod:`workbench.representations.hoggle`), "strictly speaking" not an inversion, since w
  is not a HOG descriptor.

No DPM models ship with any installed package, so the study trains its own template: a logistic regression
on the workbench's CNN-HOG of the 100 faces of scikit-image's LFW subset (``skimage.data.lfw_subset``,
25 × 25 crops, resized to the template's side) against its 100 non-faces and random windows of the shipped
photos that show no people (negatives), a seeded 70/30 split, the training faces also mirrored. The template
is the classifier's weight vector (``cells × cells`` cells of 27 components) and its score a
``Conv2d(27, 1, cells)`` on the HOG cells, the way DPM applies a filter. The network that activation
maximisation runs on computes ⟨w, Φ_HOG(x)⟩ / M, so that the pre-image engine's Z = ρ² (a grey model has
no calibration data there, M = 1) is the paper's Mρ²; the default C = ρ² of the engine (see
docs/fidelity.md) then gives C/Z = 1/M.

The run folder has ``metrics.json`` (the classifier's held-out accuracy beside chance, M, the score of each
visualisation, the HOGgle dictionary), ``template.safetensors`` (w and b) and the figure
``images/hog_template_column`` and ``_slide`` (PNG and PDF): the mean training face, the activation
maximisation restarts and HOGgle(w₊), each captioned with the classifier's score.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Generator

import numpy as np
import torch
import torch.nn as nn

from workbench.errors import UserError
from workbench.jobs import Cancelled, CancelToken, Event, Log, Step, relay
from workbench.runs import RunStore
from workbench.signals import Forced
from workbench.studies.common import study_job

#: Template side in HOG cells (8-pixel cells: a 64 × 64 window; DPM root filters are 6–10 cells a side).
CELLS = 8
#: The shipped natural photos that show no people: where negative windows come from.
NEGATIVE_PHOTOS = ("chelsea", "coffee", "rocket", "motorcycle_left", "china", "flower")


@dataclass
class Template:
    """A linear HOG template: score(x) = ⟨w, Φ_HOG(x)⟩ + b, w of shape (27, cells, cells)."""
    w: np.ndarray
    b: float
    cell_size: int
    metrics: dict[str, Any]

    @property
    def side(self) -> int:
        return self.w.shape[-1] * self.cell_size


class TemplateNet(nn.Module):
    """CNN-HOG followed by the template as a convolution on its cells (IJCV sect. 6.1), divided by M."""

    def __init__(self, template: Template, M: float = 1.0) -> None:
        super().__init__()
        from workbench.representations import build

        self.hog = build("hog", template.cell_size)
        w = torch.from_numpy(np.asarray(template.w, dtype=np.float32) / M)
        self.score = nn.Conv2d(w.shape[0], 1, tuple(w.shape[1:]), bias=False)
        with torch.no_grad():
            self.score.weight.copy_(w[None])
        self.score.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.hog(x))


def _hog(network, images: np.ndarray) -> np.ndarray:
    """HOG cells of grey images (N, H, W) in [0, 1], flattened: (N, 27 · rows · cols)."""
    with torch.no_grad():
        x = torch.from_numpy(255.0 * (np.asarray(images, dtype=np.float32) - 0.5))[:, None]
        return network(x).flatten(1).double().numpy()


def face_windows(side: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's LFW subset (100 faces, then 100 non-faces, 25 × 25) resized to ``side``²: (faces, non-faces)."""
    import skimage.data

    from workbench.data.images import prepare_image

    try:
        data = np.asarray(skimage.data.lfw_subset(), dtype=np.float32)
    except Exception as error:  # a stripped install: the data file is missing or unreadable
        raise UserError(f"scikit-image's LFW subset (the template's faces) cannot be read: {error}") from None
    data = data / (255.0 if data.max() > 1.0 else 1.0)
    resized = np.stack([prepare_image(image[:, :, None], 1, (side, side))[:, :, 0] for image in data])
    return resized[:100], resized[100:]


def photo_windows(side: int, n: int, seed: int) -> np.ndarray:
    """``n`` random ``side``² windows of the shipped photos without people (:data:`NEGATIVE_PHOTOS`), each
    photo resized so its shorter side is 2, 3 or 4 windows (seeded)."""
    from workbench.data.images import load_image, prepare_image
    from workbench.data.photos import photo_paths

    paths = dict(photo_paths())
    names = [name for name in NEGATIVE_PHOTOS if name in paths]
    if not names:
        raise UserError("no shipped photos to draw negative windows from (scikit-image, scikit-learn)")
    rng = np.random.default_rng(seed)
    pyramid = []
    for name in names:
        image = load_image(paths[name])
        h, w = image.shape[:2]
        for k in (2, 3, 4):
            scale = k * side / min(h, w)
            pyramid.append(prepare_image(image, 1, (int(h * scale), int(w * scale)))[:, :, 0])
    out = []
    for _ in range(n):
        image = pyramid[int(rng.integers(len(pyramid)))]
        y, x = int(rng.integers(image.shape[0] - side + 1)), int(rng.integers(image.shape[1] - side + 1))
        out.append(image[y:y + side, x:x + side])
    return np.stack(out)


def train_template(*, cells: int = CELLS, cell_size: int = 8, negatives: int = 300, C: float = 0.1,
                   seed: int = 0) -> Template:
    """Train the face template (see the module docstring): logistic regression on HOG, a seeded 70/30
    split of faces and negatives, training faces mirrored; accuracy on the held-out 30 %."""
    from sklearn.linear_model import LogisticRegression

    from workbench.representations import build

    side = cells * cell_size
    faces, non_faces = face_windows(side)
    negative = np.concatenate([non_faces, photo_windows(side, negatives, seed)])
    rng = np.random.default_rng(seed)
    pos, neg = rng.permutation(len(faces)), rng.permutation(len(negative))
    p_train, p_test = pos[:70 * len(pos) // 100], pos[70 * len(pos) // 100:]
    n_train, n_test = neg[:70 * len(neg) // 100], neg[70 * len(neg) // 100:]
    network = build("hog", cell_size).eval()
    train_faces = np.concatenate([faces[p_train], faces[p_train, :, ::-1]])
    X = _hog(network, np.concatenate([train_faces, negative[n_train]]))
    y = np.r_[np.ones(len(train_faces)), np.zeros(len(n_train))]
    X_test = _hog(network, np.concatenate([faces[p_test], negative[n_test]]))
    y_test = np.r_[np.ones(len(p_test)), np.zeros(len(n_test))]
    classifier = LogisticRegression(C=C, max_iter=5000, class_weight="balanced").fit(X, y)
    predicted = classifier.predict(X_test)
    recall = [float(np.mean(predicted[y_test == k] == k)) for k in (1, 0)]
    metrics = {"train_accuracy": float(classifier.score(X, y)), "test_accuracy": float(np.mean(predicted == y_test)),
               "test_balanced_accuracy": float(np.mean(recall)), "test_face_recall": recall[0],
               "test_negative_recall": recall[1],
               "chance_accuracy": float(max(np.mean(y_test), 1 - np.mean(y_test))), "chance_balanced_accuracy": 0.5,
               "train": {"faces": int(len(train_faces)), "negatives": int(len(n_train))},
               "test": {"faces": int(len(p_test)), "negatives": int(len(n_test))},
               "classifier": f"sklearn LogisticRegression(C={C}, class_weight='balanced')",
               "mean_train_face": faces[p_train].mean(axis=0)}
    w = classifier.coef_[0].reshape(27, cells, cells)
    return Template(w=w, b=float(classifier.intercept_[0]), cell_size=cell_size, metrics=metrics)


def activation_range(template: Template, seed: int = 0) -> float:
    """M of eq. 9 for a template: ⟨|w|, Φ_HOG(x)⟩ for x a white-noise image (uniform grey levels, seeded)."""
    from workbench.representations import build

    noise = np.random.default_rng(seed).random((1, template.side, template.side), dtype=np.float32)
    return float(np.abs(template.w).ravel() @ _hog(build("hog", template.cell_size).eval(), noise)[0])


def scores(template: Template, images: np.ndarray) -> np.ndarray:
    """⟨w, Φ_HOG(x)⟩ + b of grey images (N, side, side) in [0, 1]."""
    from workbench.representations import build

    return _hog(build("hog", template.cell_size).eval(), images) @ template.w.ravel() + template.b


def hog_template_study(*, cells: int = CELLS, negatives: int = 300, restarts: int = 2, iters: int = 300,
                       seed: int = 0, hoggle=None, hoggle_cache=None, out=None, runs_root=None,
                       device: str | torch.device = "cpu", figure_sizes: tuple[str, ...] = ("column", "slide"),
                       cancel: CancelToken | None = None) -> Generator[Event, None, dict]:
    """IJCV Fig. 15 as a job (see the module docstring); returns its metrics."""
    from workbench import limits
    from workbench.device import resolve_device
    from workbench.export.style import SIZES
    from workbench.representations.hoggle import HoggleSpec
    from workbench.threads import job_threads

    limits.integer("cells", cells, 2, 32)
    limits.integer("negatives", negatives, 10, 100_000)
    limits.integer("restarts", restarts, 1, 100)
    limits.integer("iters", iters, 1, 100_000)
    limits.seed("seed", seed)
    for size in figure_sizes:
        if size not in SIZES:
            raise UserError(f"unknown figure size '{size}': use {', '.join(SIZES)}")
    spec = hoggle or HoggleSpec()
    if not isinstance(spec, HoggleSpec):
        raise UserError(f"hoggle must be a HoggleSpec, not {type(spec).__name__}")
    spec.check()
    cancel = cancel or CancelToken()
    device = resolve_device(device)
    side = cells * spec.cell_size
    config = {"study": "hog-template", "figure": "IJCV 2016 Fig. 15", "cells": cells, "cell_size": spec.cell_size,
              "side": side, "negatives": negatives, "restarts": restarts, "iters": iters, "seed": seed,
              "positives": "skimage.data.lfw_subset faces (100), mirrored for training",
              "negative_sources": ["skimage.data.lfw_subset non-faces (100)",
                                   f"{negatives} random windows of {', '.join(NEGATIVE_PHOTOS)}"],
              "maximisation": "IJCV sect. 6.1: loss -<w, Phi_HOG(x)>/(M rho^2), M = <|w|, Phi_HOG(noise)>, no jitter",
              "hoggle": {**spec.__dict__, "sides": list(spec.sides), "photos": list(spec.photos)}}

    def body(run):
        from workbench.config.preimage import PreimageConfig
        from workbench.models.loading import from_module
        from workbench.preimage.solve import preimage_job
        from workbench.representations.hoggle import PairedDictionaryCache

        started = time.monotonic()
        metrics: dict[str, Any] = {"config": config, "complete": False}
        status = "done"
        try:
            yield Log("training the template (logistic regression on HOG: faces vs. non-faces and photo windows)")
            template = train_template(cells=cells, cell_size=spec.cell_size, negatives=negatives, seed=seed)
            mean_face = template.metrics.pop("mean_train_face")
            M = activation_range(template, seed)
            metrics["template"] = {**template.metrics, "b": template.b, "M": M,
                                   "w_norm": float(np.linalg.norm(template.w)),
                                   "positive_fraction": float(np.mean(template.w > 0))}
            run.save_tensors("template.safetensors", {"w": torch.from_numpy(template.w.copy()),
                                                      "b": torch.tensor([template.b], dtype=torch.float64)})
            m = template.metrics
            yield Log(f"template: held-out accuracy {m['test_accuracy']:.3f} (chance {m['chance_accuracy']:.3f}), "
                      f"balanced {m['test_balanced_accuracy']:.3f} (chance 0.5); M = {M:.4g}")
            cancel.check()

            loaded = from_module(TemplateNet(template, M), name="hog-template", input_size=(1, side, side),
                                 mean=(0.5,), std=(1.0 / 255.0,), device=device)
            total = iters * restarts
            cfg = PreimageConfig(model=loaded.name, layer="score", method="maximize", channel=0, restarts=restarts,
                                 iters=iters, fine_tune_iters=0, jitter=1, seed=seed, device=str(device),
                                 snapshot_every=0, frame_every=0)

            def translate(event: Event) -> Event | None:
                if isinstance(event, Step):
                    return Step(event.iteration, event.total, dict(event.values), stage="activation maximisation")
                return event if isinstance(event, Log) and event.level != "info" else None

            folder = run.path / "maximisation"
            result = yield from relay(preimage_job(cfg, cancel=cancel, runs=RunStore(folder.parent), out=folder,
                                                   model=loaded), translate)
            pixels = result.pixels if result.pixels is not None else result.images
            am = np.asarray(pixels)[..., 0]
            yield Step(total, total, {}, stage="HOGgle")

            def learning(event: Event) -> Event | None:
                if isinstance(event, Step):
                    return Step(total, total, {}, stage=f"HOGgle dictionary {event.iteration}/{event.total}")
                return event

            pd = yield from relay((hoggle_cache or PairedDictionaryCache()).get(spec, cancel=cancel), learning)
            w_plus = np.maximum(template.w, 0.0)
            hoggle_image = pd.invert(w_plus)
            score_am = scores(template, am)
            score_hoggle = float(scores(template, hoggle_image[None])[0])
            score_face = float(scores(template, mean_face[None])[0])
            metrics.update({
                "activation_maximisation": {"score": score_am.tolist(), "score_over_M": (score_am / M).tolist(),
                                            "engine_activation": result.metrics.get("activation"),
                                            "C": result.metrics.get("C"), "rho": result.metrics.get("rho"),
                                            "run": "maximisation"},
                "hoggle": {"score": score_hoggle, "score_over_M": score_hoggle / M, "dictionary": pd.info,
                           "rectified": "w+ = max(0, w)"},
                "mean_train_face": {"score": score_face},
                "maximisation_beats_hoggle": bool(np.min(score_am) > score_hoggle)})
            yield Log(f"score <w, HOG(x)> + b: activation maximisation {', '.join(f'{s:.2f}' for s in score_am)}; "
                      f"HOGgle(w+) {score_hoggle:.2f}; mean training face {score_face:.2f}")
            run.save_image("hoggle.png", hoggle_image)
            for k, image in enumerate(am):
                run.save_image(f"maximisation-{k}.png", result.images[k])
            _figures(run, template, mean_face, result.images[..., 0], hoggle_image, score_am, score_hoggle, score_face,
                     figure_sizes)
        except Forced:  # a second stop signal: end at once, no figures (issue 17)
            raise
        except (Cancelled, KeyboardInterrupt):
            status = "cancelled"
        metrics["seconds"] = round(time.monotonic() - started, 1)
        metrics["complete"] = status == "done"
        return metrics

    return (yield from study_job("hog-template", config, body, threads=job_threads((1, side, side), restarts),
                                 out=out, runs_root=runs_root, device=device))


def _figures(run, template: Template, mean_face, am, hoggle_image, score_am, score_hoggle, score_face, sizes) -> None:
    """images/hog_template_<size>.png/.pdf: mean training face | activation maximisation restarts | HOGgle(w₊)."""
    from workbench.export.figures import FigureGrid
    from workbench.export.render import save_run_figure
    from workbench.export.style import FigureStyle

    tiles = [mean_face] + list(am) + [hoggle_image]
    labels = ["mean face (train)"] + [f"act. max. {k + 1}" for k in range(len(am))] + ["HOGgle(w+)"]
    captions = [f"score {score_face:.1f}"] + [f"score {s:.1f}" for s in score_am] + [f"score {score_hoggle:.1f}"]
    acc = template.metrics["test_accuracy"]
    grid = FigureGrid([[np.clip(t, 0.0, 1.0)[:, :, None] for t in tiles]], row_labels=["face"], col_labels=labels,
                      captions=[captions],
                      title=f"A HOG face template ({template.w.shape[-1]}x{template.w.shape[-1]} cells, held-out "
                            f"accuracy {acc:.2f}): activation maximisation vs HOGgle (IJCV Fig. 15)")
    for size in sizes:
        style = FigureStyle(size=size)
        save_run_figure(run, f"hog_template_{size}", grid.figure(style), style)
