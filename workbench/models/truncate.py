"""Φ_ℓ: the network computed only up to layer ℓ (IJCV paper, sect. 3: the representation Φ).

Built with torchvision's ``create_feature_extractor``, which traces the model with FX, makes
layer ℓ the graph's output and removes every node it does not depend on, so nothing past ℓ
runs. Our own leaf modules (``architectures.CUSTOM_LEAVES``) are kept whole.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from workbench.models.graph import trace, tracer_kwargs


class Truncated(nn.Module):
    """Maps a normalized input batch (N, C, H, W) to the output of one layer; frozen, eval."""

    def __init__(self, extractor: nn.Module, layer: str) -> None:
        super().__init__()
        self.extractor = extractor
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)[self.layer]

    def train(self, mode: bool = True) -> "Truncated":
        return super().train(False)


def truncate(module: nn.Module, layer: str) -> Truncated:
    """Φ_ℓ for the layer name ``layer`` (see :func:`workbench.models.graph.layer_table`)."""
    from torchvision.models.feature_extraction import create_feature_extractor

    from workbench.errors import UserError

    queries = trace(module)[2]
    if layer not in queries:
        raise UserError(f"unknown layer '{layer}': see `workbench layers` for the names")

    was_training = module.training
    try:
        extractor = create_feature_extractor(module.eval(), return_nodes={queries[layer]: layer},
                                             tracer_kwargs=tracer_kwargs(), suppress_diff_warning=True)
    finally:
        module.train(was_training)
    phi = Truncated(extractor, layer).eval()
    phi.requires_grad_(False)
    return phi
