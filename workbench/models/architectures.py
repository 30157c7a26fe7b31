"""The papers' networks, with layer names that read like the papers.

Every network is an ``nn.Sequential`` of named leaf modules, so the layer table, truncation
and the filter-GAN address layers by these names (``conv4``, ``relu4``, ``pool5`` ...).

- :func:`digits_vgg` — the filter-GAN paper's MNIST net (sect. 5: "5 convolutional layers with
  ReLU nonlinearities, max-pooling and batch normalization"), for 32×32 grey digits.
- :func:`lenet5` — LeNet-5 as in the lecture (C1, S2, C3, S4, C5, F6): S2/S4 sum 2×2 blocks,
  multiply by a weight and add a bias; C3 is partially connected (LeCun et al. 1998, Table I).
- :func:`cifar_vgg` — Ruderman et al. sect. 2.2: blocks 2×32, 2×64, 2×128, 2×256 of 3×3 conv +
  batch-norm + ReLU, each followed by one of five downsamplings, global average pooling and
  one linear layer.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


def digits_vgg(num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """conv(32)-conv(32)-pool-conv(64)-conv(64)-pool-conv(128)-pool-fc on 32×32 input."""
    spec = [(1, 32, False), (2, 32, True), (3, 64, False), (4, 64, True), (5, 128, True)]
    layers: list[tuple[str, nn.Module]] = []
    c_in = in_channels
    for i, c_out, pool in spec:
        layers += [(f"conv{i}", nn.Conv2d(c_in, c_out, 3, padding=1)),
                   (f"bn{i}", nn.BatchNorm2d(c_out)),
                   (f"relu{i}", nn.ReLU())]
        if pool:
            layers.append((f"pool{i}", nn.MaxPool2d(2, 2)))
        c_in = c_out
    layers += [("flatten", nn.Flatten()), ("fc", nn.Linear(128 * 4 * 4, num_classes))]
    return nn.Sequential(OrderedDict(layers))


class Subsampling(nn.Module):
    """LeNet-5's S-layers: each 2×2 block is summed, multiplied by a trainable weight, plus a bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = 2, 2, 0
        self.weight = nn.Parameter(torch.full((channels,), 0.25))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.avg_pool2d(x, 2, 2) * 4.0
        return s * self.weight[:, None, None] + self.bias[:, None, None]


#: LeCun et al. (1998), Table I: which S2 maps each C3 map sees.
LENET_C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5),
)


class PartialConv2d(nn.Conv2d):
    """A convolution whose output map j sees only the input maps listed in ``table[j]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, table=LENET_C3_TABLE) -> None:
        super().__init__(in_channels, out_channels, kernel_size)
        mask = torch.zeros(out_channels, in_channels, 1, 1)
        for j, inputs in enumerate(table):
            mask[j, list(inputs)] = 1.0
        self.register_buffer("connection", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.connection, self.bias, self.stride, self.padding)


def lenet5(num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """C1 6@5×5, S2, C3 16@5×5 (partial), S4, C5 120@5×5, F6 84, output; tanh activations."""
    return nn.Sequential(OrderedDict([
        ("c1", nn.Conv2d(in_channels, 6, 5)), ("tanh1", nn.Tanh()),
        ("s2", Subsampling(6)), ("tanh2", nn.Tanh()),
        ("c3", PartialConv2d(6, 16, 5)), ("tanh3", nn.Tanh()),
        ("s4", Subsampling(16)), ("tanh4", nn.Tanh()),
        ("c5", nn.Conv2d(16, 120, 5)), ("tanh5", nn.Tanh()),
        ("flatten", nn.Flatten()),
        ("f6", nn.Linear(120, 84)), ("tanh6", nn.Tanh()),
        ("output", nn.Linear(84, num_classes)),
    ]))


#: Ruderman et al. sect. 2.2, the five downsampling layers compared on CIFAR10.
DOWNSAMPLINGS = ("subsample", "maxpool", "avgpool", "strided", "strided-relu")
CIFAR_VARIANTS = {f"cifar-vgg-{d}": d for d in DOWNSAMPLINGS}


def cifar_vgg(downsampling: str = "maxpool", num_classes: int = 10, in_channels: int = 1,
              blocks: tuple[tuple[int, int], ...] = ((2, 32), (2, 64), (2, 128), (2, 256))) -> nn.Sequential:
    """VGG-style net of Ruderman et al. (sect. 2.2) with the given downsampling after each block."""
    if downsampling not in DOWNSAMPLINGS:
        raise ValueError(f"unknown downsampling {downsampling!r}: use one of {', '.join(DOWNSAMPLINGS)}")
    layers: list[tuple[str, nn.Module]] = []
    c_in = in_channels
    for b, (n, c_out) in enumerate(blocks, start=1):
        for i in range(1, n + 1):
            layers += [(f"conv{b}_{i}", nn.Conv2d(c_in, c_out, 3, padding=1)),
                       (f"bn{b}_{i}", nn.BatchNorm2d(c_out)),
                       (f"relu{b}_{i}", nn.ReLU())]
            c_in = c_out
        if downsampling == "subsample":  # keep the top-left corner of each 2×2 block
            layers.append((f"down{b}", nn.MaxPool2d(kernel_size=1, stride=2)))
        elif downsampling == "maxpool":
            layers.append((f"down{b}", nn.MaxPool2d(2, 2)))
        elif downsampling == "avgpool":
            layers.append((f"down{b}", nn.AvgPool2d(2, 2)))
        else:
            layers.append((f"down{b}", nn.Conv2d(c_out, c_out, 2, stride=2)))
            if downsampling == "strided-relu":
                layers += [(f"down{b}_bn", nn.BatchNorm2d(c_out)), (f"down{b}_relu", nn.ReLU())]
    layers += [("gap", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(c_in, num_classes))]
    return nn.Sequential(OrderedDict(layers))


#: Modules of these architectures the FX tracer keeps whole, each one layer (declared to the tracer
#: by the zoo source: :func:`workbench.models.sources.leaf_modules`).
CUSTOM_LEAVES = (Subsampling, PartialConv2d)
