"""The filter-GAN configs (ICLR 2018 submission): training (Algorithm 1), evaluation (sect. 5.2)
and latent traversal (sect. 4). No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.config import option
from workbench.errors import UserError
from workbench.resources import shipped_filtergan_run

#: Parametrisations of G (see workbench.filtergan.networks.FilterGenerator).
GENERATORS = ("shared", "channel")
#: Sect. 5.2: "we randomly drew 10 noise vectors".
FILTER_SETS = 10

#: Upper bounds beyond which an option is a typo rather than a setting.
MAX_STEPS = 10_000_000
MAX_WIDTH = 1_000_000
MAX_RANK = 10_000
MAX_BATCH = 1_000_000


@dataclass
class FilterGanConfig:
    model: str = option("digits-vgg", "the frozen CNN (see ModelSpec)", cli=False)
    layer: str = option("conv4", "the conv layer whose filters G generates", required=True)
    steps: int = option(2000, "training iterations of Algorithm 1")
    latent_dim: int = option(16, "size of z (the paper does not say)")
    batch_size: int = option(16, "m of Algorithm 1")
    lr: float = option(2e-4, "RMSprop learning rate, for D, G and Q (step 10)")
    lambda_info: float = option(5.0, "λ of the mutual-information term (0.5 and 2 gave less z-dependence, "
                                     "same accuracy)")
    generator: str = option("shared", "G's parametrisation: one transformation of layer ℓ−1's maps shared by all "
                                      "filters, or each filter on its own (ours, see FilterGenerator)",
                            choices=GENERATORS)
    rank: int = option(8, "transformations (shared) or directions per output channel (channel) in G", cli=False)
    hidden: int = option(128, "width of G's MLP and of D's last layer", cli=False)
    seed: int = option(0, "seed of z, the batches and the initialisation")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    checkpoint_every: int = option(500, "steps between checkpoints")
    sample_every: int = option(50, "a sheet of generated filters on the progress events every N steps", cli=False)
    log_every: int = option(10, "loss history resolution in metrics.json", cli=False)
    train_images: int | None = option(None, "use only the first N training digits (default: all)")

    def validate(self, filter_shape: tuple[int, int, int, int] | None = None) -> None:
        """Every option in range, and G and D small enough to fit in memory (for a conv layer with
        ``filter_shape`` = (C_out, C_in, k, k) when given; a lower bound otherwise)."""
        from workbench import limits
        from workbench.limits import check_device_name

        limits.text("model", self.model)
        limits.text("layer", self.layer)
        check_device_name(self.device)
        limits.seed("--seed", self.seed)
        if self.train_images is not None:
            limits.integer("--train-images", self.train_images, 1)
        for name in ("latent_dim", "rank", "hidden"):
            limits.integer(name.replace("_", "-"), getattr(self, name), 1)
        limits.choice("--generator", self.generator, GENERATORS)
        limits.require_memory(self.memory_estimate(filter_shape), f"a filter-GAN with hidden size {self.hidden}, "
                              f"latent size {self.latent_dim} and rank {self.rank}",
                              "lower hidden, latent_dim or rank", self.device if self.device != "auto" else None)
        for name, high in (("steps", MAX_STEPS), ("latent_dim", MAX_WIDTH), ("batch_size", MAX_BATCH),
                           ("rank", MAX_RANK), ("hidden", MAX_WIDTH), ("checkpoint_every", MAX_STEPS),
                           ("sample_every", MAX_STEPS), ("log_every", MAX_STEPS)):
            option = name.replace("_", "-")
            limits.integer(f"--{option}" if name not in ("rank", "hidden") else option, getattr(self, name), 1, high)
        limits.real("--lr", self.lr, high=1.0, positive=True)
        limits.real("--lambda-info", self.lambda_info, 0.0, 1e6)

    def memory_estimate(self, filter_shape: tuple[int, int, int, int] | None = None) -> int:
        """Bytes for G's and D's weights with their gradients and RMSprop state (4 copies)."""
        c_out, c_in, kh, kw = filter_shape or (1, 1, 1, 1)
        d = c_in * kh * kw
        trunk = self.latent_dim * self.hidden + self.hidden * self.hidden
        if self.generator == "shared":
            head = self.hidden * self.rank + 2 * self.rank * c_out * d
        else:
            head = self.hidden * c_out * (self.rank + 1) + c_out * self.rank * d
        discriminator = self.hidden * (64 * 16 + 1 + self.latent_dim)
        return 4 * 4 * (trunk + head + discriminator)


@dataclass
class FilterGanEvalConfig:
    filter_sets: int = option(FILTER_SETS, "generated filter sets averaged (sect. 5.2: 10)")
    retrain_epochs: int = option(3, "epochs re-training the following layers")
    retrain_lr: float = option(1e-3, "learning rate of the re-training", cli=False)
    batch_size: int = option(64, "images per batch of the re-training", cli=False)
    mds_samples: int = option(20, "generated filter sets in the MDS")
    mds_iter: int = option(300, "iterations of the MDS solver", cli=False)
    seed: int = option(0, "seed of the generated filter sets")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    train_images: int | None = option(None, "re-train on the first N training digits only (default: all)")

    def validate(self, fgan=None) -> None:
        """Every option in range; with the reopened filter-GAN also the memory the evaluation needs."""
        from workbench import limits
        from workbench.limits import check_device_name

        limits.integer("--filter-sets", self.filter_sets, 1, 10_000)
        limits.integer("--retrain-epochs", self.retrain_epochs, 0, 10_000)
        limits.real("retrain_lr", self.retrain_lr, high=1.0, positive=True)
        limits.integer("batch_size", self.batch_size, 1, 1_000_000)
        limits.integer("--mds-samples", self.mds_samples, 2, 10_000)
        limits.integer("mds_iter", self.mds_iter, 1, 1_000_000)
        limits.seed("--seed", self.seed)
        check_device_name(self.device)
        if self.train_images is not None:
            limits.integer("--train-images", self.train_images, 1)
        if fgan is not None:
            limits.require_memory(self.memory_estimate(fgan), f"evaluating {self.filter_sets} filter sets and an MDS of "
                                  f"{self.mds_samples} sets", "lower --filter-sets or --mds-samples", fgan.device)

    def memory_estimate(self, fgan) -> int:
        """Bytes: the generated filters, the averaged activations of one batch, and the MDS (float64)."""
        c_out, c_in, kh, kw = fgan.split.conv.weight.shape
        d = c_in * kh * kw
        _, h, w = fgan.model.input_size
        filters = 4 * self.filter_sets * c_out * (d + 1)
        activations = 4 * self.filter_sets * 256 * c_out * h * w
        points = (self.mds_samples + 1) * c_out
        mds = 8 * (3 * points * points + self.mds_samples * c_out * c_out * d + points * d)
        return filters + activations + mds


@dataclass
class TraversalConfig:
    run: str = field(default_factory=lambda: str(shipped_filtergan_run()))  # the positional RUN_DIR
    sample: str = option("digits:0", "digits:N (N-th test digit) or an image file")
    dims: tuple[int, int] | None = option(None, "the two latent dimensions (default: drawn with the seed)",
                                          metavar=("I", "J"))
    xi: float = option(12.0, "ξ: the grid spans ±ξ along each dimension")
    grid: int = option(5, "k: odd grid size (the centre is the sample itself)")
    iters: int = option(200, "gradient-descent iterations per cell")
    C: float | None = option(3000.0, "data-term weight (None: the engine's inversion preset for layer ℓ's output)",
                             flag=("-C", "--C"))
    resolution: int | None = option(8, "optimise a δ at R×R, upsampled (8, the digits' own resolution; 0: per "
                                       "pixel)")
    seed: int = option(0, "draws z (and the dims when not given)")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    snapshot_every: int = option(20, "an image on the progress events every N iterations", cli=False)

    def validate(self, latent_dim: int | None = None, input_size: tuple[int, int, int] | None = None) -> None:
        """Every option in range; ``dims`` within ``latent_dim`` and ``resolution`` within the input when given."""
        from workbench import limits
        from workbench.limits import check_device_name

        limits.text("run", self.run)
        limits.text("--sample", self.sample)
        check_device_name(self.device)
        limits.integer("--grid", self.grid, 3, 15)
        if self.grid % 2 == 0:
            raise UserError(f"grid must be odd and at least 3 (the centre is the sample itself), got {self.grid}")
        limits.real("--xi", self.xi, high=1000.0, positive=True)
        if self.C is not None:
            limits.real("-C", self.C, high=1e12, positive=True)
        if self.resolution is not None:
            limits.integer("--resolution", self.resolution, 2, max(input_size[1:]) if input_size else 4096)
        limits.integer("--iters", self.iters, 1, 1_000_000)
        limits.integer("snapshot_every", self.snapshot_every, 1, 1_000_000)
        limits.seed("--seed", self.seed)
        if self.dims is not None:
            if not isinstance(self.dims, (tuple, list)) or len(self.dims) != 2:
                raise UserError(f"--dims takes two latent dimensions I J, got {self.dims!r}")
            i, j = (limits.integer("--dims", d, 0) for d in self.dims)
            if i == j:
                raise UserError(f"dims must be two different latent dimensions, got {i} {j}")
            if latent_dim is not None and not (i < latent_dim and j < latent_dim):
                raise UserError(f"dims {i} {j} out of range: this filter-GAN has latent dimensions 0..{latent_dim - 1}")
