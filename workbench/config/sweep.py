"""The sweep config: a grid of pre-image runs (issue 11), and the atlas, a sweep over a layer's channels.
No torch here: layer names such as ``all-conv`` and ranges (``conv1..relu3``) and image folders are
expanded by :mod:`workbench.sweep.grid` once the models are open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.config import option
from workbench.config.model import ModelSpec
from workbench.config.preimage import FORMULATIONS, ITERS, MAX_ITERS, MAX_RESTARTS, MAX_WEIGHT, METHODS
from workbench.errors import UserError

EXECUTORS = ("local", "process", "ray")
PRESETS = ("paper-fig6", "paper-cvpr2015")
#: IJCV sect. 5.2.1 (Fig. 6, CVPR Table 3): the data-term weights swept for every layer.
PAPER_FIG6_C = (1.0, 20.0, 100.0, 300.0)
#: CVPR 2015 Table 3 (and Figs. 4, 8): λ_1 = 0.5, λ_2 = 10 λ_1, λ_3 = 100 λ_1 for every layer.
PAPER_CVPR_LAMBDA_TV = (0.5, 5.0, 50.0)
#: Layers named by a word rather than one by one.
LAYER_WORDS = ("all", "all-conv", "all-relu")
MAX_CELLS = 1_000_000
MAX_WORKERS = 4096


@dataclass(frozen=True)
class ExecutorConfig:
    """Where independent tasks run — a sweep's cells, an atlas's channels, a study's trainings: the one
    declaration and check of ``--executor``, ``--workers`` and ``--address`` (SweepConfig and AtlasConfig
    record the same three fields in their run.json; a study takes this config)."""

    executor: str = option("local", "local (one after another in this process), process (a pool of --workers "
                           "processes) or ray (a local Ray, or the cluster at --address); the same seeds give "
                           "the same numbers on every executor", choices=EXECUTORS)
    workers: int | None = option(None, "worker processes (process) or CPUs of the embedded Ray (default: the "
                                 "cores)")
    address: str | None = option(None, "Ray cluster to join: auto or HOST:PORT (default: start a local Ray)")

    def validate(self) -> None:
        from workbench import limits

        limits.choice("--executor", self.executor, EXECUTORS)
        if self.workers is not None:
            limits.integer("--workers", self.workers, 1, MAX_WORKERS)
        if self.address is not None:
            if self.executor != "ray":
                raise UserError("--address is for --executor ray")
            limits.text("--address", self.address)

    def options(self) -> dict[str, Any]:
        """The executor's name and options, as :func:`workbench.sweep.executors.make_executor` takes them."""
        return {"executor": self.executor, "workers": self.workers, "address": self.address}


@dataclass
class SweepConfig:
    """A grid over models × layers × C × seeds × images (invert, caricature) or channels (maximize)."""

    models: tuple[str, ...] = option(("digits-vgg",), "models, comma-separated (zoo names, files, ...)",
                                     flag=("--model", "--models"), parse="names", metavar="M[,M2]")
    #: ModelSpec's other fields (weights, model_kwargs, input_size, ..., path) as JSON, shared by every
    #: model of the grid: with ``models`` the full spec of each (:meth:`model_specs`), recorded in run.json.
    model_options: dict[str, Any] | None = option(None, "the model options of every model (ModelSpec's fields "
                                                  "but model: --weights, --model-kwargs, ...)", cli=False)
    method: str = option("invert", "invert, maximize or caricature", choices=METHODS)
    layers: tuple[str, ...] = option(("relu3",), "layers, comma-separated: names, ranges A..B (in network "
                                     "order), all-conv, all-relu or all", parse="names", metavar="L1,L2|all-conv")
    channels: tuple[int, ...] | None = option(None, "channels to maximize, e.g. 0-7,9 (default: every channel of "
                                              "the layer)", parse="ints", metavar="0-7")
    neuron_centre: bool = option(False, "maximize the centre neuron of each channel (the default, sect. 6.2)")
    channel_mean: bool = option(False, "maximize each channel's mean over all positions instead of its centre "
                                "neuron")
    C: tuple[float, ...] | None = option(None, "data-term weights C, comma-separated (default: the paper's "
                                         "per-layer preset)", flag=("-C", "--C"), parse="floats", metavar="1,20,300")
    formulation: str = option("ijcv2016", "the objective of every cell: ijcv2016 (weighed by -C) or cvpr2015 "
                              "(weighed by --lambda-tv; see `workbench invert --help`)", choices=FORMULATIONS)
    lambda_tv: tuple[float, ...] | None = option(None, "λ_TV values of the cvpr2015 formulation, comma-separated "
                                                 "(default: CVPR Table 3's bold choice per layer)", parse="floats",
                                                 metavar="0.5,5,50")
    seeds: tuple[int, ...] = option((0,), "seeds, e.g. 0,1 or 0-3", parse="ints", metavar="0,1")
    images: tuple[str, ...] = option(("digits:0",), "reference images, comma-separated (files, digits:N, "
                                     "digits:0-9, sample names) or folders of image files", parse="names",
                                     metavar="IMG,IMG|DIR")
    restarts: int = option(1, "K random restarts per cell")
    iters: int = option(ITERS, "T iterations per cell (sect. 3.4)")
    fine_tune_iters: int | None = option(None, "extra iterations without jitter (default: 50 for invert, 0 "
                                         "otherwise)", flag="--fine-tune")
    tol: float | None = option(None, "stop each cell's phase early when its energy changes by less than this "
                               "(see `workbench invert --help`)")
    device: str = option("auto", "device of every cell: auto, cpu, cuda, cuda:N or mps")
    threads: int = option(1, "intra-op threads per cell, fixed so every executor gives the same numbers")
    executor: str = option("local", "local (in this process), process (a pool of --workers processes) or ray "
                           "(a local Ray, or the cluster at --address)", choices=EXECUTORS)
    workers: int | None = option(None, "worker processes (process) or CPUs of the embedded Ray (default: the "
                                 "cores)")
    address: str | None = option(None, "Ray cluster to join: auto or HOST:PORT (default: start a local Ray)")
    resume: bool = option(False, "continue the sweep in --out: skip finished cells, rerun failed, interrupted "
                          "or cancelled ones (the options left out, the model too, are the folder's; a model "
                          "that is code then needs --trust)")
    preset: str | None = option(None, "paper-fig6: every layer × C ∈ {1, 20, 100, 300}, inversion, with the "
                                "IJCV Fig. 6 and Fig. 7 tables and figures; paper-cvpr2015: every layer × λ_TV ∈ "
                                "{0.5, 5, 50} with the CVPR 2015 formulation, the Table 3 table and figure and the "
                                "pre-images per layer × λ_TV (Figs. 4 and 8)", choices=PRESETS)
    out: str | None = option(None, "the sweep's folder (cells/, results.csv, results.json)", required=True,
                             metavar="DIR")

    def resolved(self) -> "SweepConfig":
        """The config with its preset applied (paper-fig6: invert, every layer, the paper's C values)."""
        from dataclasses import replace

        if self.preset == "paper-fig6":
            return replace(self, method="invert", preset=self.preset,
                           layers=("all",) if self.layers == ("relu3",) else self.layers,
                           C=self.C if self.C is not None else PAPER_FIG6_C)
        if self.preset == "paper-cvpr2015":
            return replace(self, method="invert", formulation="cvpr2015",
                           layers=("all",) if self.layers == ("relu3",) else self.layers,
                           lambda_tv=self.lambda_tv if self.lambda_tv is not None else PAPER_CVPR_LAMBDA_TV)
        return self

    def model_specs(self) -> tuple[ModelSpec, ...]:
        """The spec of each model of the grid: its name with the shared :attr:`model_options`."""
        return model_specs(self.models, self.model_options)

    def validate(self) -> None:
        from workbench import limits
        from workbench.limits import check_device_name

        limits.choice("--method", self.method, METHODS)
        ExecutorConfig(self.executor, self.workers, self.address).validate()
        if self.preset is not None:
            limits.choice("--preset", self.preset, PRESETS)
        for name, values in (("--model", self.models), ("--layers", self.layers), ("--seeds", self.seeds)):
            if not values:
                raise UserError(f"{name} needs at least one value")
        for m in self.models:
            limits.text("--model", m)
        self.model_specs()
        for layer in self.layers:
            limits.text("--layers", layer)
        for s in self.seeds:
            limits.seed("--seeds", s)
        if self.C is not None:
            if not self.C:
                raise UserError("--C needs at least one value")
            for c in self.C:
                limits.real("--C", c, high=1e12, positive=True)
        if self.channels is not None:
            for k in self.channels:
                limits.integer("--channels", k, 0)
        limits.choice("--formulation", self.formulation, FORMULATIONS)
        if self.lambda_tv is not None:
            if self.formulation != "cvpr2015":
                raise UserError("--lambda-tv weighs the CVPR 2015 priors: add --formulation cvpr2015")
            if not self.lambda_tv:
                raise UserError("--lambda-tv needs at least one value")
            for v in self.lambda_tv:
                limits.real("--lambda-tv", v, high=MAX_WEIGHT, positive=True)
        if self.formulation == "cvpr2015":
            if self.method != "invert":
                raise UserError(f"--formulation cvpr2015 is an inversion objective, not one for {self.method}")
            if self.C is not None:
                raise UserError("-C weighs the IJCV 2016 data term: a cvpr2015 sweep is weighed by --lambda-tv")
        if self.method == "maximize":
            if self.channel_mean and self.neuron_centre:
                raise UserError("--neuron-centre and --channel-mean exclude each other")
        elif self.channels is not None or self.channel_mean or self.neuron_centre:
            raise UserError(f"--channels, --neuron-centre and --channel-mean are for maximize, not {self.method}")
        if self.method != "maximize" and not self.images:
            raise UserError(f"{self.method} needs --images")
        limits.integer("--restarts", self.restarts, 1, MAX_RESTARTS)
        limits.integer("--iters", self.iters, 1, MAX_ITERS)
        if self.fine_tune_iters is not None:
            limits.integer("--fine-tune", self.fine_tune_iters, 0, MAX_ITERS)
        if self.tol is not None:
            limits.real("--tol", self.tol, high=1.0, positive=True)
        check_device_name(self.device)
        limits.integer("--threads", self.threads, 1, 1024)
        if not self.out:
            raise UserError("a sweep needs --out DIR")


@dataclass
class AtlasConfig:
    """Every selected channel of one layer maximized (IJCV Figs. 16–21), as a contact sheet."""

    model: str = option("digits-vgg", "the model (zoo name, file, ...)")
    model_options: dict[str, Any] | None = option(None, "the model's options (ModelSpec's fields but model: "
                                                  "--weights, --model-kwargs, ...)", cli=False)
    layer: str = option("relu3", "the layer whose channels to maximize", required=True)
    channels: tuple[int, ...] | None = option(None, "channels, e.g. 0-63 (default: every channel)", parse="ints",
                                              metavar="0-63")
    neuron_centre: bool = option(False, "maximize the centre neuron of each channel (the default, sect. 6.2)")
    channel_mean: bool = option(False, "maximize each channel's mean over all positions")
    seed: int = option(0, "seed of every channel's restarts")
    restarts: int = option(1, "K random restarts per channel (the sheet shows the first)")
    iters: int = option(ITERS, "T iterations per channel")
    tol: float | None = option(None, "stop each channel early when its energy settles (see --tol of invert)")
    device: str = option("auto", "device of every cell")
    threads: int = option(1, "intra-op threads per cell")
    executor: str = option("local", "local, process or ray", choices=EXECUTORS)
    workers: int | None = option(None, "worker processes or Ray CPUs (default: the cores)")
    address: str | None = option(None, "Ray cluster to join: auto or HOST:PORT")
    resume: bool = option(False, "continue the atlas in --out, reusing finished channels (the options left out, "
                          "the model too, are the folder's; a model that is code then needs --trust)")
    out: str | None = option(None, "the atlas folder (atlas.png, atlas.pdf, index.json, cells/)", required=True,
                             metavar="DIR")

    def sweep(self) -> SweepConfig:
        return SweepConfig(models=(self.model,), model_options=self.model_options, method="maximize", layers=(self.layer,), channels=self.channels,
                           neuron_centre=self.neuron_centre, channel_mean=self.channel_mean, seeds=(self.seed,),
                           images=(), restarts=self.restarts, iters=self.iters, tol=self.tol, device=self.device,
                           threads=self.threads, executor=self.executor, workers=self.workers,
                           address=self.address, resume=self.resume, out=self.out)


def model_specs(models: tuple[str, ...], options: dict[str, Any] | None) -> tuple[ModelSpec, ...]:
    """``ModelSpec(model=m, **options)`` for each of ``models``, checked (a UserError names a bad option)."""
    from workbench.config import from_dict

    if options is not None and not isinstance(options, dict):
        raise UserError(f"model_options must be a JSON object of ModelSpec fields, not {type(options).__name__}")
    if options and "model" in options:
        raise UserError("model_options must not name the model: the grid's models do")
    specs = tuple(from_dict(ModelSpec, {"model": m, **(options or {})}) for m in models)
    for spec in specs:
        spec.validate()
    return specs


def options_of(spec: ModelSpec) -> dict[str, Any] | None:
    """``spec``'s fields but ``model`` that are given (None when none is): a config's ``model_options``."""
    from workbench.config import to_dict

    given = {k: v for k, v in to_dict(spec).items() if k != "model" and v is not None}
    return given or None
