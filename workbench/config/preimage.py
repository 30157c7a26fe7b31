"""The pre-image config: inversion, activation maximisation and caricature (Mahendran & Vedaldi,
IJCV 2016, eq. 7), with the paper's constants (sect. 3.3, 3.4). No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workbench.config import option
from workbench.errors import UserError

#: Sect. 3.3: "C = 1, α = 6, β = 2, B = 80, B+ = 2B, and V = B/6.5".
ALPHA = 6.0
BETA = 2.0
B = 80.0
B_PLUS_FACTOR = 2.0
V_FACTOR = 1.0 / 6.5
#: Sect. 3.4: T = 300 iterations, then 50 without jitter at a tenth of the rate (inversion only).
ITERS = 300
FINE_TUNE_ITERS = 50
FINE_TUNE_RATE = 0.1

METHODS = ("invert", "maximize", "caricature")
SCHEDULES = ("auto", "batched", "sequential")
#: Presets (issue 19): ``paper`` is IJCV 2016 exactly; ``natural`` is feature visualisation as measured
#: best on an ImageNet network (docs/fidelity.md, "Feature visualisation"); ``auto`` picks natural for
#: activation maximisation on colour inputs of at least NATURAL_MIN_SIZE pixels, paper otherwise (on the
#: grey 224-px input of HOG and DSIFT the paper's formulation reached the higher activation, sooner).
PRESETS = ("auto", "paper", "natural")
NATURAL_MIN_SIZE = 128
PARAMETRISATIONS = ("pixels", "fourier", "maco")
TRANSFORMS = ("jitter", "standard", "natural")
#: The objective an inversion minimises: IJCV 2016 eq. 7 (C·ℓ + R_α + R_TV, each prior divided by its typical
#: value) or CVPR 2015 eq. 3 as printed (ℓ + λ_α R_α + λ_TV R_TV; :mod:`workbench.preimage.cvpr2015`).
FORMULATIONS = ("ijcv2016", "cvpr2015")

#: Upper bounds beyond which an option is a typo rather than a setting.
MAX_RESTARTS = 100_000
MAX_ITERS = 1_000_000
MAX_JITTER = 1024
MAX_EXPONENT = 100.0
MAX_WEIGHT = 1e12


def resolve_preset(config: "PreimageConfig", input_size: tuple[int, int, int]) -> str:
    """The preset a run uses: ``config.preset``, or for ``auto`` natural when maximizing on a colour
    (3-channel) input of at least :data:`NATURAL_MIN_SIZE` pixels a side (an ImageNet-resolution
    network; measured in docs/fidelity.md), paper otherwise: inversion and caricature keep the paper's
    formulation, and so does a grey input — the natural preset's colour decorrelation is ImageNet's RGB
    statistics, and on HOG's and DSIFT's 224-px grey input it reached a lower activation than the
    paper's pixels in more time (docs/fidelity.md, "auto on HOG and DSIFT")."""
    if config.preset != "auto":
        return config.preset
    natural = config.method == "maximize" and input_size[0] == 3 and min(input_size[1:]) >= NATURAL_MIN_SIZE
    return "natural" if natural else "paper"


def preset_jitter(stride: int) -> int:
    """T = the integer closest to a quarter of the layer's stride (sect. 5.2.1); T ≤ 1 means none."""
    return max(1, int(round(stride / 4)))


@dataclass
class PreimageConfig:
    """Everything that determines a pre-image run (round-trips through JSON)."""

    model: str = option("digits-vgg", "zoo name, model file, package.module:callable or timm:NAME "
                        "(see `workbench zoo list`)", cli=False)
    layer: str = option("relu3", "layer name or alias (see `workbench layers --model M`)", required=True)
    method: str = option("invert", "invert, maximize or caricature", cli=False, choices=METHODS)
    image: str | None = option("digits:0", "reference image: a file, digits:N (the N-th test digit) or a sample "
                               "photo (astronaut, coffee, chelsea, camera, rocket)", flag=("--image", "--sample"),
                               metavar="IMAGE", methods=("invert", "caricature"))
    channel: int | None = option(None, "channel to maximize", methods=("maximize",))
    neuron: tuple[int, int] | None = option(None, "the neuron Y X of the channel to maximize (default: the centre "
                                            "of the map, as in sect. 6.2)", metavar=("Y", "X"), methods=("maximize",))
    channel_mean: bool = option(False, "maximize the channel's mean over all positions (ρ = the image size) "
                                "instead of one neuron (ρ = its receptive field, sect. 6.2)", methods=("maximize",))
    restarts: int = option(4, "K random restarts")
    iters: int = option(ITERS, "T iterations (sect. 3.4)")
    fine_tune_iters: int | None = option(None, "extra iterations without jitter at a tenth of the rate "
                                         "(default: 50 for invert, 0 otherwise; sect. 3.4)", flag="--fine-tune")
    seed: int = option(0, "seed of the restarts' generators (same seed, same images)")
    tol: float | None = option(None, "stop a phase early once the relative change of the mean energy between two "
                               "windows of --tol-window iterations is below this (after --min-iters); "
                               "default: run every iteration")
    tol_window: int = option(20, "iterations per window of the --tol rule")
    min_iters: int = option(50, "iterations before the --tol rule may stop the main phase")
    C: float | None = option(None, "data-term weight C of eq. 7 (default: the paper's per-layer preset, "
                             "sect. 5.2.1 and 6.2)", flag=("-C", "--C"))
    alpha: float = option(ALPHA, "α of the bounded-range prior R_α (eq. 5)")
    beta: float = option(BETA, "β of the TV prior R_TV^β (eq. 6)")
    B: float | None = option(None, "typical pixel norm B of eq. 5 (default: 80, or measured on the model's data)")
    B_plus: float | None = option(None, "B+ of the bounded-range projection (default 2B, sect. 3.3)", cli=False)
    V: float | None = option(None, "V of the TV prior, the typical gradient norm (default: measured on the "
                             "model's data, else B/6.5 as in sect. 3.3)", cli=False)
    jitter: int | None = option(None, "jitter T in pixels (default: a quarter of the layer's stride, sect. 5.2.1)")
    mask_window: int | None = option(None, "invert only the central K×K positions of the layer (eq. 3, Fig. 13)",
                                     flag="--window", methods=("invert",))
    mask_channels: tuple[int, ...] | None = option(None, "invert only these channels (eq. 3, Fig. 14)",
                                                   flag="--channels", methods=("invert",))
    formulation: str = option("ijcv2016", "ijcv2016: eq. 7 of IJCV 2016, C weighs the data term; cvpr2015: "
                              "CVPR 2015 eq. 3 as printed, ‖Φ(σx) − Φ0‖²/‖Φ0‖² + λ_α R_α + λ_TV R_TV^β, without "
                              "jitter unless --jitter, and the error over N_Φ (CVPR Tables 1, 3)", choices=FORMULATIONS,
                              methods=("invert",))
    lambda_tv: float | None = option(None, "λ_TV of the cvpr2015 formulation (default: CVPR Table 3's bold choice "
                                     "for the layer: 0.5, 5 or 50)", methods=("invert",))
    lambda_alpha: float | None = option(None, "λ_α of the cvpr2015 formulation (default: the printed rule "
                                        "σ^α/(HW·128^α); CNN-A's is 2.16e8)", methods=("invert",))
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    schedule: str = option("auto", "restarts as one batch or one at a time (auto: batched on GPUs, "
                           "sequential on CPUs)", choices=SCHEDULES)
    snapshot_every: int = option(5, "an image on the progress events every N iterations (0: only the last)",
                                 cli=False)
    frame_every: int = option(10, "keep a frame every N iterations for the animation (0: none)", flag="--frames",
                              metavar="N")
    preset: str = option("auto", "paper: IJCV 2016 exactly (pixels, jitter, Algorithm 1); natural: Fourier "
                         "parametrisation with decorrelated colour (Olah et al. 2017), pad/jitter/scale/rotation/blur, "
                         "Adam on the data term alone (no priors), each restart's most robust iterate kept "
                         "(issue 19; docs/fidelity.md); auto: natural "
                         f"for maximize on colour inputs of {NATURAL_MIN_SIZE} px or more, paper otherwise",
                         choices=PRESETS)
    parametrisation: str | None = option(None, "what is optimised: pixels (IJCV sect. 3), fourier (decorrelated "
                                         "colour, Olah et al. 2017) or maco (phase only, Fel et al. 2023); "
                                         "default: the preset's", choices=PARAMETRISATIONS)
    transforms: str | None = option(None, "robustness transforms: jitter (IJCV eq. 7), standard (Lucid's pad, "
                                    "jitter, scale 0.9-1.1, rotation ±10°; Olah et al. 2017) or natural (standard "
                                    "with scales down to 0.5 and a random blur); default: the preset's", choices=TRANSFORMS)
    lr: float | None = option(None, "Adam's step size for a fourier or maco parametrisation (default: the "
                              "preset's)")
    diversity: float = option(0.0, "weight of the diversity term across restarts (Olah et al. 2017); it acts "
                              "among the restarts of one batch: use it with --schedule batched",
                              methods=("maximize",))
    judge: str | None = option(None, "a second, independently trained model (zoo name or spec) that scores the "
                               "target class in the quality metrics", methods=("maximize",))

    def validate(self, model=None, layer=None) -> None:
        """Every option in range; with the loaded ``model`` and its ``layer`` also the channel,
        neuron and mask indices, the jitter, the reference image and the memory the run needs."""
        from workbench import limits
        from workbench.limits import check_device_name

        limits.choice("method", self.method, METHODS)
        limits.choice("--schedule", self.schedule, SCHEDULES)
        limits.text("--model", self.model)
        limits.text("--layer", self.layer)
        check_device_name(self.device)
        limits.integer("--restarts", self.restarts, 1, MAX_RESTARTS)
        limits.integer("--iters", self.iters, 1, MAX_ITERS)
        if self.fine_tune_iters is not None:
            limits.integer("--fine-tune", self.fine_tune_iters, 0, MAX_ITERS)
        limits.seed("--seed", self.seed)
        if self.tol is not None:
            limits.real("--tol", self.tol, high=1.0, positive=True)
        limits.integer("--tol-window", self.tol_window, 1, MAX_ITERS)
        limits.integer("--min-iters", self.min_iters, 0, MAX_ITERS)
        limits.real("--alpha", self.alpha, high=MAX_EXPONENT, positive=True)
        limits.real("--beta", self.beta, high=MAX_EXPONENT, positive=True)
        for name in ("C", "B", "B_plus", "V"):
            if getattr(self, name) is not None:
                limits.real(f"--{name}" if name in ("C", "B") else name, getattr(self, name), high=MAX_WEIGHT,
                            positive=True)
        if self.jitter is not None:
            limits.integer("--jitter", self.jitter, 1, MAX_JITTER)
        limits.integer("--frames", self.frame_every, 0, MAX_ITERS)
        limits.integer("snapshot_every", self.snapshot_every, 0, MAX_ITERS)
        limits.choice("--preset", self.preset, PRESETS)
        if self.parametrisation is not None:
            limits.choice("--parametrisation", self.parametrisation, PARAMETRISATIONS)
        if self.transforms is not None:
            limits.choice("--transforms", self.transforms, TRANSFORMS)
        if self.lr is not None:
            limits.real("--lr", self.lr, high=MAX_WEIGHT, positive=True)
        limits.real("--diversity", self.diversity, 0.0, MAX_WEIGHT)
        if self.judge is not None:
            limits.text("--judge", self.judge)
        limits.choice("--formulation", self.formulation, FORMULATIONS)
        for name in ("lambda_tv", "lambda_alpha"):
            if getattr(self, name) is not None:
                limits.real("--" + name.replace("_", "-"), getattr(self, name), high=MAX_WEIGHT, positive=True)
        if self.formulation == "cvpr2015":
            if self.method != "invert":
                raise UserError(f"--formulation cvpr2015 is an inversion objective, not one for {self.method}")
            if self.C is not None:
                raise UserError("-C weighs the IJCV 2016 data term: the cvpr2015 formulation weighs the priors "
                                "instead (--lambda-tv, --lambda-alpha)")
            if self.preset == "natural" or self.parametrisation not in (None, "pixels"):
                raise UserError("--formulation cvpr2015 optimises pixels, as the paper does: drop --preset natural "
                                "and --parametrisation")
        elif self.lambda_tv is not None or self.lambda_alpha is not None:
            raise UserError("--lambda-tv and --lambda-alpha weigh the CVPR 2015 priors: add --formulation cvpr2015 "
                            "(the IJCV 2016 formulation is weighed by -C)")
        if self.method in ("invert", "caricature") and not self.image:
            raise UserError(f"{self.method} needs a reference image: pass --image PATH or --sample NAME")
        if self.image is not None and self.method in ("invert", "caricature"):
            from workbench.data.images import load_source

            load_source(self.image)
        if self.method == "maximize" and self.channel is None:
            raise UserError("maximize needs a channel: pass --channel C")
        if self.channel is not None:
            limits.integer("--channel", self.channel, 0)
        if self.neuron is not None and self.channel_mean:
            raise UserError("--neuron and --channel-mean exclude each other: maximize one neuron or the channel's mean")
        if self.neuron is not None:
            if not isinstance(self.neuron, (tuple, list)) or len(self.neuron) != 2:
                raise UserError(f"--neuron takes two numbers Y X, got {self.neuron!r}")
            for v in self.neuron:
                limits.integer("--neuron", v, 0)
        if self.mask_window is not None:
            limits.integer("--window", self.mask_window, 1)
        if self.mask_channels is not None:
            for k in self.mask_channels:
                limits.integer("--channels", k, 0)
        if model is not None and layer is not None:
            self.validate_for(model, layer)

    def validate_for(self, model, layer) -> None:
        """The checks that need the loaded ``model`` and its ``layer``: indices, jitter, memory."""
        from workbench import limits

        c, h, w = model.input_size
        shape = tuple(layer.shape)
        if self.jitter is not None and self.jitter > min(h, w):
            raise UserError(f"--jitter {self.jitter} is larger than the {h}×{w} input: use at most {min(h, w)}")
        if self.channel is not None and self.channel >= shape[0]:
            raise UserError(f"channel {self.channel} out of range: layer {layer.name} has {shape[0]} channels "
                            f"(0..{shape[0] - 1})")
        if self.neuron is not None and len(shape) == 3 and not (self.neuron[0] < shape[1] and self.neuron[1] < shape[2]):
            raise UserError(f"neuron ({self.neuron[0]}, {self.neuron[1]}) is outside the {shape[1]}×{shape[2]} map "
                            f"of {layer.name}")
        if self.mask_channels:
            bad = [k for k in self.mask_channels if k >= shape[0]]
            if bad:
                raise UserError(f"mask channels {bad} out of range: layer {layer.name} has {shape[0]} channels")
        T = self.jitter if self.jitter is not None else preset_jitter(layer.stride)
        canvas = c * (h + T - 1) * (w + T - 1)
        fine_tune = self.fine_tune_iters if self.fine_tune_iters is not None else FINE_TUNE_ITERS
        frames = (self.iters + fine_tune) // self.frame_every + 2 if self.frame_every else 0
        codes = sum(math.prod(info.shape) for info in model.layers() if info.index <= layer.index)
        batched = self.schedule == "batched" or (self.schedule == "auto" and str(model.device).split(":")[0] != "cpu")
        per_restart = 4 * (6 * canvas + frames * c * h * w + (3 * codes if batched else 0))
        need = self.restarts * per_restart + 4 * 3 * codes
        limits.require_memory(need, f"{self.restarts} restart(s) of {layer.name}", "lower --restarts"
                              + (" or keep fewer --frames" if frames else ""), model.device)


#: Upper bounds beyond which an option is a typo rather than a setting.
MAX_RESTARTS = 100_000
MAX_ITERS = 1_000_000
MAX_JITTER = 1024
MAX_EXPONENT = 100.0
MAX_WEIGHT = 1e12
