"""Small networks a spec names as ``fixtures_models.nets:NAME``."""

from __future__ import annotations

import torch
import torch.nn as nn

CONSTANT = 3


class TwoHeads(nn.Module):
    """A conv trunk on 3x16x16 input with two classifier heads: ``forward`` returns (head, aux)."""

    def __init__(self, num_classes: int = 10, aux_classes: int = 3, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(width * 8 * 8, num_classes)
        self.aux = nn.Linear(width * 8 * 8, aux_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.flatten(self.pool(self.relu(self.conv(x))))
        return self.head(z), self.aux(z)


def make_grey(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """A factory: a 1-channel net whose input size the loader must assume (1x32x32)."""
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))


def not_a_module() -> list:
    return [nn.Linear(2, 2)]


def broken(**kwargs) -> nn.Module:
    raise ValueError("this factory always fails")
