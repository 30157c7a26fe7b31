"""A sweep's grid: models × layers × (C | λ_TV) × seeds × (images | channels), one PreimageConfig per cell."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.config import parse_ints, to_dict
from workbench.config.preimage import PreimageConfig
from workbench.config.sweep import MAX_CELLS, SweepConfig
from workbench.data.images import IMAGE_SUFFIXES, check_image
from workbench.errors import UserError

#: Layers whose code is their input's, left out of ``all``.
PASS_THROUGH = ("Flatten", "Dropout", "Identity")


@dataclass(frozen=True)
class Cell:
    """One run of a sweep: its config (as a dict, JSON-ready), its folder name, its row's columns and
    its model's full spec (``to_dict(ModelSpec)``: what the cell opens and its run.json records)."""

    name: str
    config: dict[str, Any]
    columns: dict[str, Any]
    spec: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return self.name.rsplit("-", 1)[-1]


#: PreimageConfig fields added after sweeps existed, left out of the key at these values, so a sweep made
#: before them keeps its cells' folders (--resume finds them).
LATER_FIELDS = {"formulation": "ijcv2016", "lambda_tv": None, "lambda_alpha": None}


def cell_key(config: dict[str, Any]) -> str:
    """A hash of a cell's PreimageConfig (``to_dict``): the same config, the same folder."""
    config = {k: v for k, v in config.items() if not (k in LATER_FIELDS and v == LATER_FIELDS[k])}
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", str(text)).strip("_")[:40] or "x"


def expand_layers(words: tuple[str, ...], layers) -> list[str]:
    """Layer names in network order from names, ranges ``A..B``, ``all-conv``, ``all-relu``, ``all``."""
    names = [info.name for info in layers]
    by_name = {info.name: info for info in layers}
    aliases = {info.alias: info.name for info in layers if getattr(info, "alias", None)}
    chosen: list[str] = []

    def resolve(name: str) -> str:
        if name in by_name:
            return name
        if name in aliases:
            return aliases[name]
        raise UserError(f"no layer {name!r}: the layers are {', '.join(names)}")

    for word in words:
        if word == "all-conv":
            chosen += [i.name for i in layers if "conv" in i.kind.lower()]
        elif word == "all-relu":
            chosen += [i.name for i in layers if "relu" in i.kind.lower()]
        elif word == "all":
            chosen += [i.name for i in layers if i.kind not in PASS_THROUGH]
        elif ".." in word:
            lo, hi = (resolve(p) for p in word.split("..", 1))
            a, b = names.index(lo), names.index(hi)
            if b < a:
                raise UserError(f"layer range {word}: {hi} comes before {lo}")
            chosen += names[a:b + 1]
        else:
            chosen.append(resolve(word))
    out = list(dict.fromkeys(chosen))
    if not out:
        raise UserError(f"--layers {','.join(words)} names no layer of this model")
    return out


def expand_images(items: tuple[str, ...]) -> list[str]:
    """Image sources: ``digits:A-B`` ranges, folders (their image files, sorted), the rest as given."""
    out: list[str] = []
    for item in items:
        m = re.fullmatch(r"digits:(\d+-\d+)", item)
        path = Path(item).expanduser()
        if m:  # counted before it is expanded (a range of 10 billion is refused at once)
            out += [f"digits:{k}" for k in parse_ints("--images digits:", m.group(1))]
        elif path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise UserError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES[:4])} ...)")
            for file in files:  # every file's format and size from its header, before any cell runs
                check_image(file)
            out += [str(p) for p in files]
        else:
            out.append(item)
    return list(dict.fromkeys(out))


def expand(config: SweepConfig, open_model=None) -> list[Cell]:
    """Every cell of the grid, in a fixed order (model, layer, C, seed, image or channel).
    ``open_model(spec)`` opens a :class:`~workbench.config.model.ModelSpec` for its layer table
    (default: without importing code, as for a spec read from a file)."""
    from workbench.config import to_dict as spec_dict
    from workbench.models import load_model

    config = config.resolved()
    config.validate()
    specs = dict(zip(config.models, config.model_specs()))
    images = expand_images(config.images) if config.method != "maximize" else [None]
    lower = (len(config.models) * len(config.seeds) * len(images) * (len(config.C) if config.C else 1)
             * (len(config.lambda_tv) if config.lambda_tv else 1)
             * (len(config.channels) if config.channels else 1))
    if lower > MAX_CELLS:  # before any model is opened or any cell made
        raise UserError(f"the grid has at least {lower:,} cells (models × C × seeds × images × channels); "
                        f"the limit is {MAX_CELLS:,}: narrow it")
    cells: list[Cell] = []
    for model_name in config.models:
        spec = specs[model_name]
        model = open_model(spec) if open_model is not None else load_model(spec, device="cpu", imports=False)
        recorded = spec_dict(spec)
        # a bare name keeps the key it always had (sweeps made before model options resume as they were)
        keyed = {} if not config.model_options else {"model_spec": recorded}
        table = model.layers()
        for layer in expand_layers(config.layers, table):
            info = model.layer(layer)
            if config.method == "maximize":
                n = info.shape[0]
                channels = list(config.channels) if config.channels is not None else list(range(n))
                bad = [k for k in channels if k >= n]
                if bad:
                    raise UserError(f"channels {bad[:5]} out of range: {layer} has {n} channels (0..{n - 1})")
            else:
                channels = [None]
            weights = [(C, None) for C in (config.C if config.C is not None else (None,))]
            if config.formulation == "cvpr2015":
                weights = [(None, lam) for lam in (config.lambda_tv if config.lambda_tv is not None else (None,))]
            for C, lambda_tv in weights:
                for seed in config.seeds:
                    for image in images:
                        for channel in channels:
                            pre = PreimageConfig(
                                model=model_name, layer=layer, method=config.method, image=image,
                                channel=channel, channel_mean=config.channel_mean if channel is not None else False,
                                restarts=config.restarts, iters=config.iters,
                                fine_tune_iters=config.fine_tune_iters, seed=seed, C=C, tol=config.tol,
                                device=config.device, snapshot_every=0, frame_every=0,
                                formulation=config.formulation, lambda_tv=lambda_tv)
                            d = to_dict(pre)
                            tag = f"ch{channel}" if channel is not None else _slug(Path(str(image)).stem
                                                                                   if "/" in str(image) else image)
                            weight = (f"C{C:g}" if C else "Cpreset") if config.formulation != "cvpr2015" else \
                                (f"tv{lambda_tv:g}" if lambda_tv else "tvpreset")
                            cname = "-".join([_slug(model_name), _slug(layer), weight,
                                              f"s{seed}", tag, cell_key({**d, **keyed})])
                            columns = {"model": model_name, "layer": layer, "method": config.method, "C": C,
                                       "seed": seed, "image": image, "channel": channel}
                            if config.formulation == "cvpr2015":
                                columns["lambda_tv"] = lambda_tv
                            cells.append(Cell(cname, d, columns, recorded))
                            if len(cells) > MAX_CELLS:
                                raise UserError(f"the grid has more than {MAX_CELLS} cells: narrow it")
    return cells
