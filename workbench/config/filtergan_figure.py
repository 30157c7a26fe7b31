"""The config of the filter-GAN's Figure 2 (ICLR 2018 submission): generated filters of one layer
in the paper's view (one third of the input channels summed), beside the real filters. No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workbench.config import option
from workbench.resources import shipped_filtergan_run

#: Upper bounds beyond which an option is a typo rather than a setting (a figure of more rows or
#: columns than this cannot be read at any size).
MAX_SAMPLES = 64
MAX_CHANNELS = 256


@dataclass
class FilterFigureConfig:
    run: str = field(default_factory=lambda: str(shipped_filtergan_run()))  # the positional RUN_DIR
    samples: int = option(7, "rows of generated filters, one random z each (the first row is the real filters)")
    channels: int = option(16, "output channels shown (the first N of the layer; columns)")
    seed: int = option(0, "draws the z of the rows")
    device: str = option("auto", "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")

    def validate(self) -> None:
        from workbench import limits
        from workbench.limits import check_device_name

        limits.text("run", self.run)
        limits.integer("--samples", self.samples, 1, MAX_SAMPLES)
        limits.integer("--channels", self.channels, 1, MAX_CHANNELS)
        limits.seed("--seed", self.seed)
        check_device_name(self.device)
