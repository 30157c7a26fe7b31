"""Inverting HOG, HOGb and DSIFT: CVPR 2015 sect. 4 and Table 1, IJCV 2016 sect. 5.1 and Table 2.

HOGgle (Vondrick et al. 2013, the papers' baseline: :mod:`workbench.representations.hoggle`) inverts HOG
with a paired dictionary learned on the shipped natural photos that are not inverted here (cached after
the first run); its column is ``hoggle``. Each other representation is inverted from its output layer for each photo with the workbench's pre-image
engine (:func:`workbench.preimage.solve.preimage_job`), in the IJCV formulation (eq. 1 / 7) with the
settings of IJCV sect. 5.1.1: C = 100, no jitter, and sect. 3.3's α = 6, β = 2, B = 80, B+ = 2B,
V = B/6.5; T = 300 iterations (sect. 3.4; the 50 fine-tuning iterations belong to jitter, which is
not used). The CVPR paper's own objective (λ_α = 2.16·10⁸, λ_TV = 5, β = 2) is a different
parametrisation of the same kind of energy, which the engine does not implement.

The error is the CVPR paper's normalised reconstruction error ‖Φ(x*) − Φ(x_i)‖ / N_Φ, in percent,
N_Φ the average pairwise Euclidean distance between the codes Φ(x_i) of the test photos (here of
all the scikit-image sample photos, so N_Φ does not depend on how many are inverted). ‖Φ(x*) − Φ0‖
comes from the engine's own eq. 2 error, ‖Φ(x*) − Φ0‖²/‖Φ0‖² (computed on x* before it is clipped
to an image), which is also reported beside IJCV Table 2.

The study writes one run folder: ``metrics.json``, ``table.md``, ``images/representations.png``
(original | HOGgle | inverse HOG | inverse HOGb | inverse DSIFT per photo, as the papers' figure) and ``inversions/<rep>-<photo>/``,
the engine's run folder of each inversion.
"""

from __future__ import annotations

import itertools
import math
import time
from pathlib import Path
from typing import Any, Generator, Sequence

import numpy as np
import torch

from workbench.errors import UserError
from workbench.jobs import Cancelled, CancelToken, Event, Log, Step, relay
from workbench.runs import RunStore, atomic_path
from workbench.signals import Forced
from workbench.studies.common import study_job
from workbench.preimage.cvpr2015 import mean_pairwise_distance

#: CVPR 2015 Table 1: mean ± standard deviation of the error over 100 ILSVRC 2012 validation images.
PAPER_CVPR = {"hoggle": (66.20, 13.7), "hog": (28.10, 7.9), "hogb": (10.67, 5.2), "dsift": (10.89, 7.5)}
#: IJCV 2016 Table 2: mean ± 95% confidence interval of the mean, normalised error (eq. 2/3).
PAPER_IJCV = {"hoggle": (60.1, 2.3), "hog": (36.6, 3.4), "hogb": (11.6, 0.9), "dsift": (9.4, 1.7)}
LABELS = {"hoggle": "HOGgle", "hog": "HOG", "hogb": "HOGb", "dsift": "DSIFT"}
#: Default size: 4 photos at 224 × 224, 300 iterations, one restart (about 2 minutes on 2 CPU cores,
#: and about a minute more the first time, to learn HOGgle's dictionary).
PHOTOS = ("astronaut", "coffee", "chelsea", "camera")
SIZE, ITERS, C = 224, 300, 100.0
#: ``hoggle`` is HOG inverted by Vondrick et al.'s paired dictionary; the others by the pre-image engine.
REPRESENTATIONS = ("hoggle", "hog", "hogb", "dsift")
HOGGLE = "hoggle"


def _check(photos, size, iters, restarts, C, representations, cell_size, figure_photos, normaliser) -> None:
    from workbench import limits
    from workbench.data.images import load_source
    from workbench.representations import parse_name

    if not photos:
        raise UserError("the representations study needs at least one photo")
    for photo in list(photos) + list(normaliser):
        load_source(photo)
    if len(normaliser) < 2:
        raise UserError("N_Φ is an average pairwise distance: give at least two normaliser photos")
    limits.integer("--size", size, 16, 2048)
    limits.integer("--iters", iters, 1, 100_000)
    limits.integer("--restarts", restarts, 1, 100)
    limits.integer("--figure-photos", figure_photos, 0, 100)
    limits.real("-C", C, high=1e12, positive=True)
    if not representations:
        raise UserError("the representations study needs at least one of hoggle, hog, hogb, dsift")
    for rep in representations:
        if rep != HOGGLE and parse_name(rep)[1] is not None:
            raise UserError(f"give the cell size as cell_size, not in the name ({rep})")
    if cell_size is not None:
        limits.integer("--cell-size", cell_size, 2, 64)
    from workbench.representations import CELL_SIZE, min_side

    for rep in representations:
        need = min_side("hog" if rep == HOGGLE else rep, cell_size or CELL_SIZE)
        if size < need:
            raise UserError(f"--size {size} is too small for {rep} with {cell_size or CELL_SIZE}-pixel cells: "
                            f"use at least {need}")


def _codes(loaded, phi, photos: Sequence[str], device) -> list[torch.Tensor]:
    from workbench.data.images import load_reference

    codes = []
    with torch.no_grad():
        for photo in photos:
            p0 = torch.from_numpy(load_reference(photo, loaded.input_size)[0]).permute(2, 0, 1)[None].to(device)
            mean = torch.tensor(loaded.mean, device=device).view(1, -1, 1, 1)
            std = torch.tensor(loaded.std, device=device).view(1, -1, 1, 1)
            codes.append(phi((255.0 * (p0 - mean)) / (255.0 * std)).flatten().double().cpu())
    return codes


def _normaliser(codes: list[torch.Tensor]) -> dict[str, float]:
    """N_Φ (the CVPR paper's average pairwise distance) and the authors' code's variant (the mean squared
    distance over the whole n × n matrix, diagonal included: experiment_shallow_quantitative.m)."""
    pairs = [float(torch.linalg.norm(a - b)) for a, b in itertools.combinations(codes, 2)]
    n = len(codes)
    return {"N_phi": mean_pairwise_distance(codes),
            "mean_sq_distance_all_pairs": 2.0 * float(np.sum(np.square(pairs))) / (n * n)}


def representations_study(*, photos: Sequence[str] = PHOTOS, size: int = SIZE, iters: int = ITERS, restarts: int = 1,
                          C: float = C, seed: int = 0, representations: Sequence[str] = REPRESENTATIONS,
                          cell_size: int | None = None, normaliser_photos: Sequence[str] | None = None,
                          figure_photos: int = 3, out=None, runs_root=None, device: str | torch.device = "cpu",
                          hoggle=None, hoggle_cache=None,
                          cancel: CancelToken | None = None) -> Generator[Event, None, dict]:
    """The study as a job (see the module docstring); returns its metrics.

    ``photos``: sample names or image files (grey versions, centre-cropped and resized to ``size``²);
    ``normaliser_photos``: the photos whose codes define N_Φ (default: every scikit-image sample photo,
    and the inverted photos if they are not among them); ``hoggle``: the
    :class:`~workbench.representations.hoggle.HoggleSpec` of HOGgle's dictionary (default: its defaults,
    learned on the shipped natural photos that are not among ``photos``), ``hoggle_cache`` the
    :class:`~workbench.representations.hoggle.PairedDictionaryCache` it is kept in (default: the user's
    cache folder)."""
    from workbench.data.images import SAMPLE_PHOTOS
    from workbench.device import resolve_device
    from workbench.threads import job_threads

    photos, representations = list(photos), [str(r).lower() for r in representations]
    normaliser = list(normaliser_photos) if normaliser_photos is not None else \
        list(SAMPLE_PHOTOS) + [p for p in photos if p not in SAMPLE_PHOTOS]
    _check(photos, size, iters, restarts, C, representations, cell_size, figure_photos, normaliser)
    spec = _hoggle_spec(hoggle, photos, cell_size) if HOGGLE in representations else None
    cancel = cancel or CancelToken()
    device = resolve_device(device)
    config = {"study": "representations", "photos": photos, "size": size, "iters": iters, "restarts": restarts,
              "C": C, "seed": seed, "representations": representations, "cell_size": cell_size or 8,
              "normaliser_photos": normaliser, "formulation": "IJCV 2016 eq. 7: C = 100, no jitter, alpha 6, beta 2, "
              "B 80, B+ 2B, V B/6.5, no fine-tuning (sect. 3.3, 5.1.1)",
              "input": f"grey, centre-cropped and resized to {size}x{size}, pixels 255 * (grey - 0.5)"}
    if spec is not None:
        from dataclasses import asdict

        config["hoggle"] = {**asdict(spec), "method": "Vondrick et al. 2013 paired dictionary (sklearn "
                            "MiniBatchDictionaryLearning, positive lasso codes), inverts HOG's cells"}
    total = len(representations) * len(photos) * iters

    def body(run):
        from workbench.config.preimage import PreimageConfig
        from workbench.preimage.solve import preimage_job
        from workbench.representations import OUTPUT_LAYER, load

        started = time.monotonic()
        done = 0
        per: dict[str, dict[str, Any]] = {}
        results: dict[str, dict[str, Any]] = {}
        status = "done"
        try:
            for rep in representations:
                if rep == HOGGLE:
                    done = yield from _hoggle(run, spec, hoggle_cache, photos, normaliser, size, cell_size, device,
                                              cancel, per, results, done, iters, total)
                    continue
                loaded = load(rep, cell_size, input_size=(1, size, size), device=device)
                layer = OUTPUT_LAYER[rep]
                phi = loaded.truncate(layer)
                norm = _normaliser(_codes(loaded, phi, normaliser, device))
                refs = dict(zip(photos, _codes(loaded, phi, photos, device)))
                rows = []
                yield Log(f"{rep}: N_phi = {norm['N_phi']:.4g} over {len(normaliser)} photos")
                for photo in photos:
                    cfg = PreimageConfig(model=loaded.name, layer=layer, method="invert", image=photo,
                                         restarts=restarts, iters=iters, fine_tune_iters=0, C=C, jitter=1, seed=seed,
                                         device=str(device), snapshot_every=0, frame_every=0)
                    folder = run.path / "inversions" / f"{rep}-{_slug(photo)}"
                    job = preimage_job(cfg, cancel=cancel, runs=RunStore(folder.parent), out=folder, model=loaded)
                    first: dict[str, float] | None = None

                    def translate(event: Event) -> Event | None:
                        nonlocal first
                        if isinstance(event, Step):
                            first = first if first is not None else dict(event.values)
                            return Step(done + event.iteration, total, dict(event.values), stage=f"{rep} {photo}")
                        return event if isinstance(event, Log) and event.level != "info" else None

                    result = yield from relay(job, translate)
                    done += iters
                    ref_norm = float(torch.linalg.norm(refs[photo]))
                    e2 = [float(e) for e in result.metrics["reconstruction_error"]]
                    distance = [math.sqrt(e) * ref_norm for e in e2]
                    start = math.sqrt(first["loss"]) * ref_norm if first else None  # loss at iteration 1, before a step
                    rows.append({"photo": photo, "error_percent": [100.0 * d / norm["N_phi"] for d in distance],
                                 "initial_error_percent": None if start is None else 100.0 * start / norm["N_phi"],
                                 "relative_error_eq2_percent": [100.0 * e for e in e2],
                                 "authors_code_error_percent": [100.0 * d * d / norm["mean_sq_distance_all_pairs"]
                                                                for d in distance],
                                 "code_norm": ref_norm, "seconds": result.metrics.get("seconds"),
                                 "run": str(folder.relative_to(run.path))})
                    results.setdefault(rep, {})[photo] = (result.reference, result.images[0])
                    yield Log(f"{rep} {photo}: error {rows[-1]['error_percent'][0]:.1f}% "
                              f"(from {rows[-1]['initial_error_percent'] or float('nan'):.1f}%)")
                engine = {k: result.metrics.get(k) for k in ("C", "jitter", "B", "B_plus", "V")} if photos else {}
                per[rep] = {"layer": layer, "shape": list(loaded.layer(layer).shape), "engine": engine, **norm,
                            "photos": rows, **_summary(rows)}
        except Forced:  # a second stop signal: end at once, no figures (issue 17)
            raise
        except (Cancelled, KeyboardInterrupt):
            status = "cancelled"
        seconds = time.monotonic() - started
        metrics: dict[str, Any] = {"config": config, "seconds": round(seconds, 1), "complete": status == "done",
                                   "representations": per, "paper_cvpr2015_table1": PAPER_CVPR,
                                   "paper_ijcv2016_table2": PAPER_IJCV}
        _write_text(run.path / "table.md", table_markdown(metrics))
        figure = _figure(results, photos[:figure_photos], representations, size)
        if figure is not None:
            run.save_image("representations.png", figure)
        return metrics

    return (yield from study_job("representations", config, body, threads=job_threads((1, size, size), 1),
                                 out=out, runs_root=runs_root, device=device))


def _hoggle_spec(spec, photos: Sequence[str], cell_size: int | None):
    """HOGgle's dictionary settings: ``spec`` or the defaults, trained on the shipped natural photos that
    are not inverted (the papers' HOGgle learned on PASCAL VOC and was tested on ILSVRC)."""
    from dataclasses import replace

    from workbench.data.photos import photo_paths
    from workbench.representations.hoggle import HoggleSpec

    spec = spec or HoggleSpec()
    if not isinstance(spec, HoggleSpec):
        raise UserError(f"hoggle must be a HoggleSpec, not {type(spec).__name__}")
    if cell_size is not None and cell_size != spec.cell_size:
        spec = replace(spec, cell_size=cell_size)
    if not spec.photos:
        held_out = tuple(name for name, _ in photo_paths() if name not in photos)
        if not held_out:
            raise UserError("HOGgle learns its dictionary on the shipped photos that are not inverted, and every one "
                            "is inverted here: leave one out, or drop hoggle from the representations")
        spec = replace(spec, photos=held_out)
    spec.check()
    return spec


def _hoggle(run, spec, cache, photos, normaliser, size, cell_size, device, cancel, per, results, done, iters, total):
    """HOGgle's column: learn (or read) the paired dictionary, invert each photo's HOG, and measure the
    inverse's HOG against the photo's with the same N_Φ as HOG's (a sub-job; returns the new step count)."""
    from workbench.data.images import load_reference
    from workbench.representations import OUTPUT_LAYER, load
    from workbench.representations.hoggle import PairedDictionaryCache

    loaded = load("hog", cell_size, input_size=(1, size, size), device=device)
    layer = OUTPUT_LAYER["hog"]
    phi = loaded.truncate(layer)
    norm = _normaliser(_codes(loaded, phi, normaliser, device))
    refs = dict(zip(photos, _codes(loaded, phi, photos, device)))
    shape = tuple(loaded.layer(layer).shape)

    def translate(event: Event) -> Event | None:
        if isinstance(event, Step):
            return Step(done, total, {}, stage=f"HOGgle dictionary {event.iteration}/{event.total}")
        return event

    pd = yield from relay((cache or PairedDictionaryCache()).get(spec, cancel=cancel), translate)
    yield Log(f"hoggle: N_phi = {norm['N_phi']:.4g}; dictionary {pd.info.get('cache')}")
    rows = []
    for photo in photos:
        cancel.check()
        started = time.monotonic()
        x = pd.invert(refs[photo].view(shape[-3:]).numpy())
        seconds = time.monotonic() - started
        with torch.no_grad():
            code = phi(torch.from_numpy(255.0 * (x - 0.5))[None, None].to(device)).flatten().double().cpu()
        d = float(torch.linalg.norm(code - refs[photo]))
        ref_norm = float(torch.linalg.norm(refs[photo]))
        name = f"hoggle-{_slug(photo)}.png"
        run.save_image(name, x)
        rows.append({"photo": photo, "error_percent": [100.0 * d / norm["N_phi"]], "initial_error_percent": None,
                     "relative_error_eq2_percent": [100.0 * d * d / ref_norm ** 2],
                     "authors_code_error_percent": [100.0 * d * d / norm["mean_sq_distance_all_pairs"]],
                     "code_norm": ref_norm, "seconds": round(seconds, 2), "run": f"images/{name}"})
        results.setdefault(HOGGLE, {})[photo] = (load_reference(photo, (1, size, size))[0], x[:, :, None])
        done += iters
        yield Step(done, total, {}, stage=f"hoggle {photo}")
        yield Log(f"hoggle {photo}: error {rows[-1]['error_percent'][0]:.1f}% ({seconds:.1f} s)")
    per[HOGGLE] = {"layer": layer, "shape": list(shape), "engine": {"method": "HOGgle", "dictionary": pd.info}, **norm,
                   "photos": rows, **_summary(rows)}
    return done


def _slug(photo: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(photo).stem or photo)[:40]


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over photos and restarts (the papers' ±, Table 1, is the std of the errors)."""
    def stats(key: str) -> tuple[float, float]:
        values = [v for r in rows for v in (r[key] if isinstance(r[key], list) else [r[key]]) if v is not None]
        return (float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0) if values \
            else (float("nan"), float("nan"))

    out: dict[str, Any] = {}
    for key, name in (("error_percent", "error"), ("initial_error_percent", "initial_error"),
                      ("relative_error_eq2_percent", "relative_error_eq2"),
                      ("authors_code_error_percent", "authors_code_error")):
        out[f"{name}_mean"], out[f"{name}_std"] = stats(key)
    return out


def table_markdown(metrics: dict[str, Any]) -> str:
    """table.md: our errors beside the papers' (CVPR Table 1, IJCV Table 2)."""
    config, per = metrics["config"], metrics["representations"]
    lines = ["# Inverting HOG, HOGb and DSIFT", "",
             f"{len(config['photos'])} photo(s) ({', '.join(config['photos'])}), {config['input']}; "
             f"{config['iters']} iterations, {config['restarts']} restart(s), {config['formulation']}; "
             f"{config['cell_size']}-pixel cells. N_Φ over {len(config['normaliser_photos'])} photos. "
             f"{metrics['seconds']} s{'' if metrics['complete'] else ' (cancelled: partial)'}.", "",
             "| representation | ours: ‖Φ(x*)−Φ(x_i)‖/N_Φ (%) | CVPR 2015 Table 1 | IJCV 2016 Table 2 | "
             "ours at the start (%) | ours: ‖Φ(x*)−Φ0‖²/‖Φ0‖² (%) |",
             "|---|---|---|---|---|---|"]
    order = ["hoggle"] + [r for r in config["representations"] if r != "hoggle"]
    for rep in order:
        paper = PAPER_CVPR.get(rep)
        ijcv = PAPER_IJCV.get(rep)
        paper_text = f"{paper[0]:.2f} ± {paper[1]}" if paper else "—"
        ijcv_text = f"{ijcv[0]} ± {ijcv[1]}" if ijcv else "—"
        if rep in per:
            p = per[rep]
            initial = "—" if math.isnan(p["initial_error_mean"]) else f"{p['initial_error_mean']:.1f}"
            lines.append(f"| {LABELS.get(rep, rep)} | {p['error_mean']:.2f} ± {p['error_std']:.2f} | {paper_text} | "
                         f"{ijcv_text} | {initial} | {p['relative_error_eq2_mean']:.2f} ± "
                         f"{p['relative_error_eq2_std']:.2f} |")
        else:
            lines.append(f"| {LABELS.get(rep, rep)} (not run here) | — | {paper_text} | {ijcv_text} | — | — |")
    lines += ["", "± is the standard deviation over photos (and restarts), as in CVPR Table 1; IJCV Table 2 gives a "
              "95% confidence interval of the mean, and names its error eq. (3), but its numbers are on the scale of "
              "the N_Φ-normalised error (HOGgle 60.1 there, 66.2 in CVPR), not of ‖Φ(x*)−Φ0‖²/‖Φ0‖² (last column). "
              "The papers average 100 ILSVRC 2012 validation images at their own resolution, N_Φ over those 100; "
              "HOGgle (Vondrick et al.) is the paired-dictionary inverse of HOG (workbench.representations.hoggle), "
              "its dictionary learned on the shipped photos that are not inverted here; the papers ran the authors' "
              "pd.mat (1,024 atoms, PASCAL VOC).", "",
              "| representation | photo | error (%) | initial (%) | eq. 2 (%) |", "|---|---|---|---|---|"]
    for rep in config["representations"]:
        for row in per.get(rep, {}).get("photos", []):
            initial = row["initial_error_percent"]
            lines.append(f"| {LABELS.get(rep, rep)} | {row['photo']} | "
                         f"{', '.join(f'{v:.2f}' for v in row['error_percent'])} | "
                         f"{'—' if initial is None else f'{initial:.1f}'} | "
                         f"{', '.join(f'{v:.2f}' for v in row['relative_error_eq2_percent'])} |")
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def _figure(results: dict[str, dict[str, Any]], photos: Sequence[str], representations: Sequence[str], size: int):
    """original | HOGgle | inverse HOG | inverse HOGb | inverse DSIFT for each photo (CVPR Fig. 3, IJCV Fig. 5)."""
    from workbench.export.grid import labelled_grid

    photos = [p for p in photos if any(p in results.get(rep, {}) for rep in representations)]
    if not photos:
        return None
    rows = []
    for photo in photos:
        reference = next(results[rep][photo][0] for rep in representations if photo in results.get(rep, {}))
        rows.append([reference] + [results.get(rep, {}).get(photo, (None, None))[1] for rep in representations])
    labels = ["original"] + ["HOGgle" if rep == HOGGLE else f"inverse {LABELS.get(rep, rep)}"
                             for rep in representations]
    return labelled_grid(rows, col_labels=labels, row_labels=[_slug(p) for p in photos],
                         title=f"Inverting shallow representations ({size}x{size} grey, IJCV settings)")
