"""Small Qt-free computations behind the window's views: the reference image (and show()'s array
saved as one), first-layer filters
and feature maps, the Runs dock's scan and run details, the filter-GAN dock's MDS table and filters.

Plain functions: the window runs them on worker threads like every job (the GUI thread imports
no torch and reads no file); ``cancel`` is checked before the work starts. They return plain
values ready to show: images as CPU arrays, damaged files as messages.
Φ_ℓ comes from ``LoadedModel.truncate``, which builds it once under the model's own lock, so
these jobs take no lock of their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.jobs import CancelToken


def reference_image(spec: str, model) -> np.ndarray:
    """The reference as the model sees it: (H, W, C) in [0, 1] at the model's input size."""
    from workbench.data.images import load_image, load_sample, prepare_image

    if Path(spec).suffix and Path(spec).exists():
        image = load_image(spec)
    else:
        image, _ = load_sample(spec)
    c, h, w = model.input_size
    return prepare_image(image, c, (h, w))


def reference_job(spec: str, model, cancel: CancelToken):
    cancel.check()
    return reference_image(spec, model)


def reference_png(array: np.ndarray, folder: str | Path, cancel: CancelToken | None = None) -> str:
    """``workbench.show(image=array)``'s reference: the array (floats in [0, 1] or uint8) saved as
    ``folder/show-<digest>.png``, written once and atomically; returns its path. The same pixels
    give the same file."""
    import hashlib

    from workbench.errors import UserError
    from workbench.runs.files import save_png

    if array.dtype != np.uint8:
        values = np.asarray(array, dtype=np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise UserError("image array must hold finite values in [0, 1] (divide a 0-255 image by 255)")
        array = np.round(values * 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    array = np.ascontiguousarray(array)
    if cancel is not None:
        cancel.check()
    digest = hashlib.sha256(repr(array.shape).encode() + array.tobytes()).hexdigest()[:20]
    path = Path(folder) / f"show-{digest}.png"
    if not path.is_file():
        save_png(path, array)
    return str(path)


def first_conv_filters(model) -> tuple[str, np.ndarray] | None:
    """The first convolution's filters as tiles (O, k, k, C): 0.5 + w / (2 max|w|) per filter."""
    import torch

    for name, module in model.module.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            w = module.weight.detach().float().cpu()
            if w.shape[1] not in (1, 3):
                w = w[:, :1]
            scale = w.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
            tiles = (0.5 + w / (2 * scale)).permute(0, 2, 3, 1).numpy()
            return name, np.ascontiguousarray(tiles, dtype=np.float32)
    return None


def filters_job(model, cancel: CancelToken):
    cancel.check()
    return first_conv_filters(model)


# --- Runs dock ------------------------------------------------------------------------------

#: Largest run preview decoded (pixels); a larger grid.png is reported instead of decoded.
PREVIEW_PIXELS = 16_000_000


def scan_runs_job(store, cancel: CancelToken):
    """The workspace's run folders as :class:`~workbench.runs.RunSummary` rows (never raises on
    a damaged folder: it is a row marked ``unreadable``)."""
    cancel.check()
    return store.scan()


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, without decoding it; None if it is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def run_details(path: str | Path) -> dict:
    """What the Runs dock shows for one folder: ``lines`` of status and metrics, the ``grid``
    preview as (H, W, 3) uint8 (or None) and ``note`` when something could not be read.
    Never raises: a damaged file is named in the lines."""
    from workbench.errors import UserError
    from workbench.runs import read_json, safe_child, summarise

    path = Path(path)
    summary = summarise(path)
    if summary.readable:
        lines = [f"status: {summary.status}"]
        try:
            lines.append(f"device: {read_json(path / 'run.json').get('device')}")
        except (UserError, AttributeError):
            pass
        if summary.error:
            lines.append(f"error: {summary.error}")
    else:
        lines = [f"unreadable: {summary.error}"]
    try:  # a received folder: nothing is read through a link out of it
        metrics_file, png = safe_child(path, "metrics.json"), safe_child(path, "images/grid.png")
    except UserError as exc:
        return {"path": str(path), "lines": lines + [str(exc)], "grid": None, "note": "nothing is shown through a link"}
    if metrics_file.is_file():
        try:
            metrics = read_json(metrics_file, "metrics.json")
            if not isinstance(metrics, dict):
                raise UserError("metrics.json does not hold a table of metrics")
            lines += [f"{k}: {_short(v)}" for k, v in metrics.items()]
        except UserError as exc:
            lines.append(f"cannot read the metrics: {exc}")
    grid, note = None, ""
    if png.is_file():
        try:
            size = _png_size(png)
            if size is None:
                raise ValueError("not a PNG file")
            if size[0] * size[1] > PREVIEW_PIXELS:
                raise ValueError(f"{size[0]}×{size[1]} pixels, more than the preview shows ({PREVIEW_PIXELS:,})")
            from workbench.data.images import open_image

            with open_image(png, PREVIEW_PIXELS) as image:
                grid = np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
        except (UserError, OSError, ValueError) as exc:
            note = f"images/grid.png cannot be shown: {' '.join(str(exc).split())[:160]}"
    else:
        note = "no images (yet)"
    return {"path": str(path), "lines": lines, "grid": grid, "note": note}


def run_details_job(path: str | Path, cancel: CancelToken):
    cancel.check()
    return run_details(path)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list) and value and isinstance(value[0], float):
        return "[" + ", ".join(f"{v:.4g}" for v in value[:16]) + (", …]" if len(value) > 16 else "]")
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "…"


# --- Filter-GAN dock ------------------------------------------------------------------------

MDS_KEYS = {"coords": 2, "real_index": 1, "is_real": 1, "channel": 1, "sample": 1, "z": 2}


def read_mds(path: str | Path) -> dict[str, np.ndarray]:
    """``tensors/mds.safetensors`` of a filter-GAN run, checked; a damaged or foreign file is a
    one-line :class:`~workbench.errors.UserError` naming it."""
    from workbench.errors import UserError

    file = Path(path) / "tensors" / "mds.safetensors"
    try:
        from safetensors.numpy import load_file

        data = load_file(str(file))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise UserError(f"{file} cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}): "
                        "run Evaluate again to rewrite it") from None
    problems = [k for k, ndim in MDS_KEYS.items() if k not in data or data[k].ndim != ndim]
    n = len(data["coords"]) if "coords" in data and data["coords"].ndim == 2 else -1
    if not problems and (data["coords"].shape[1] != 2
                         or any(len(data[k]) != n for k in ("real_index", "is_real", "channel", "sample"))):
        problems.append("coords")
    if not problems and n:
        generated = data["sample"][~data["is_real"].astype(bool)]  # real filters have sample −1
        if (data["real_index"].min() < 0 or data["channel"].min() < 0
                or (len(generated) and (generated.min() < 0 or generated.max() >= len(data["z"])))):
            problems.append("indices")
    if problems:
        raise UserError(f"{file} is not a filter-GAN MDS table (bad or missing: {', '.join(problems)}): "
                        "run Evaluate again to rewrite it")
    return data


def mds_job(path: str | Path, cancel: CancelToken):
    """``(path, table, colours, title, evaluation)``: the run's MDS table with a colour per real
    filter, the figure's title (its layer and whether the model was trained, from run.json) and the
    sect. 5.2 evaluation stored beside it (:func:`stored_evaluation`), or ``(path, None, None, "", None)``
    for a run not evaluated yet."""
    from workbench.filtergan.plots import palette

    cancel.check()
    if not (Path(path) / "tensors" / "mds.safetensors").is_file():
        return str(path), None, None, "", None
    data = read_mds(path)
    return (str(path), data, palette(int(data["real_index"].max()) + 1 if len(data["real_index"]) else 1),
            mds_figure_title(path, data), stored_evaluation(path))


def stored_evaluation(path: str | Path) -> dict | None:
    """The sect. 5.2 evaluation a filter-GAN run folder holds (its metrics.json), or None where it
    holds none or a damaged one."""
    from workbench.errors import UserError
    from workbench.runs import read_json

    try:
        metrics = read_json(Path(path) / "metrics.json", "metrics.json")
    except UserError:
        return None
    return metrics if isinstance(metrics, dict) and "accuracy_generated" in metrics else None


def mds_figure_title(path: str | Path, data: dict[str, np.ndarray]) -> str:
    """The MDS figure's title: the run's layer, real filters and samples per filter, and the
    untrained mark (:func:`~workbench.export.figures.model_caption`); a damaged run.json leaves
    the layer out."""
    from workbench.errors import UserError
    from workbench.export.figures import model_caption
    from workbench.filtergan.plots import mds_title
    from workbench.runs import read_json

    layer, trained = "", None
    try:
        info = read_json(Path(path) / "run.json")
        layer = info.get("config", {}).get("layer", "")
        trained = (info.get("model") or {}).get("trained")
    except (UserError, AttributeError):
        pass
    is_real = np.asarray(data["is_real"], dtype=bool)
    n_real = int(is_real.sum())
    return model_caption(mds_title(layer, n_real, int((~is_real).sum() // max(n_real, 1))), trained)


def filter_point(loaded, run: str, mds: dict, index: int, model, cancel: CancelToken):
    """The filter behind MDS point ``index``: the real one, or the generator's at its stored z.
    ``loaded`` is the (run, filter-GAN) of a previous call, reused when the run is the same.
    Returns ``(loaded, image (H, W, 3) in [0, 1], caption)``."""
    import torch

    from workbench.errors import UserError
    from workbench.filtergan import load_filter_gan
    from workbench.filtergan.plots import filter_image

    if loaded is None or loaded[0] != run:
        loaded = (run, load_filter_gan(run, device="cpu", model=model))
    cancel.check()
    fg = loaded[1]
    channel = int(mds["channel"][index])
    if bool(mds["is_real"][index]):
        weights = fg.split.conv.weight
        if channel >= weights.shape[0]:
            raise UserError(f"the MDS table names filter {channel}, but the layer has {weights.shape[0]}: run Evaluate again")
        weight = weights[channel].detach().cpu().numpy()
        text = f"real filter {channel}"
    else:
        s = int(mds["sample"][index])
        with torch.no_grad():
            w, _ = fg.filters(torch.from_numpy(np.ascontiguousarray(mds["z"][s:s + 1])).float())
        if channel >= w.shape[1]:
            raise UserError(f"the MDS table names filter {channel}, but the generator makes {w.shape[1]}: run Evaluate again")
        weight = w[0, channel].cpu().numpy()
        text = f"generated filter, z #{s}, channel {channel} → real filter {int(mds['real_index'][index])}"
    image = filter_image(weight)
    return loaded, np.kron(image, np.ones((8, 8, 1), np.float32)), text


def filter_point_job(loaded, run: str, mds: dict, index: int, model, cancel: CancelToken):
    cancel.check()
    return (index,) + filter_point(loaded, run, mds, index, model, cancel)


# --- Feature maps ---------------------------------------------------------------------------

def layer_class_names(model, layer: str) -> list[str] | None:
    """The model's class names when ``layer``'s units are its classes: a vector of one unit per class
    that every later layer keeps unchanged (the logits and what only reshapes them), else None."""
    names = getattr(model, "class_names", None)
    if not names:
        return None
    layers = model.layers()
    index = next((i for i, info in enumerate(layers) if info.name == layer or info.alias == layer), None)
    if index is None:
        return None
    shape = tuple(layers[index].shape)
    if not shape or shape[0] != len(names) or any(int(d) != 1 for d in shape[1:]):
        return None
    if any(tuple(info.shape) != shape for info in layers[index + 1:]):
        return None
    return list(names)

def layer_code(model, layer: str, reference: np.ndarray) -> dict | None:
    """Φ_layer(reference) for the Feature maps tab (torch; on a worker thread).

    A map layer: ``{"kind": "maps", "maps": (C, H, W, 1)`` each channel scaled to its own range,
    ``"lo"``/``"hi"``: (C,) each channel's smallest and largest activation``}``, every channel.
    A vector layer (or maps of 1×1): ``{"kind": "vector", "values": (N,), "names"}``, the class
    names when the neurons are the classifier's classes (N class names, and no later layer
    changes the shape). None for anything else."""
    import torch

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(reference)).permute(2, 0, 1)[None].float()
        mean = torch.tensor(model.mean).view(1, -1, 1, 1)
        std = torch.tensor(model.std).view(1, -1, 1, 1)
        device = next(model.module.parameters(), torch.empty(0)).device
        phi = model.truncate(layer)  # built once per layer by the model, under its own lock
        code = phi.to(device)(((x - mean) / std).to(device))
    if not isinstance(code, torch.Tensor):
        return None
    code = code[0].detach().float().cpu()
    if code.ndim == 3 and code.shape[1] * code.shape[2] == 1:
        code = code.flatten()
    if code.ndim == 1:
        values = np.ascontiguousarray(code.numpy(), dtype=np.float32)
        names = layer_class_names(model, layer)
        if names is not None and len(names) != len(values):
            names = None
        return {"kind": "vector", "values": values, "names": list(names) if names else None}
    if code.ndim != 3:
        return None
    lo = code.flatten(1).amin(1)
    hi = code.flatten(1).amax(1)
    maps = (code - lo.view(-1, 1, 1)) / (hi - lo).clamp_min(1e-12).view(-1, 1, 1)
    return {"kind": "maps", "maps": np.ascontiguousarray(maps[..., None].numpy(), dtype=np.float32),
            "lo": lo.numpy().astype(np.float64), "hi": hi.numpy().astype(np.float64)}


def layer_code_job(model, layer: str, reference: np.ndarray, cancel: CancelToken):
    cancel.check()
    return layer_code(model, layer, reference)
