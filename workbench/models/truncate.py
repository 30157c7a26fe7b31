"""Φ_ℓ: the network computed only up to layer ℓ (IJCV paper, sect. 3: the representation Φ).

The network is traced with FX (:func:`workbench.models.graph.trace`, the names of the layer
table), layer ℓ's node becomes the graph's output and every node it does not depend on is
removed, so nothing past ℓ runs — what torchvision's ``create_feature_extractor`` does, with one
trace in eval mode instead of three, and a tracer that leaves other threads alone. Our own leaf
modules (``architectures.CUSTOM_LEAVES``) are kept whole.
"""

from __future__ import annotations

import torch
import torch.fx as fx
import torch.nn as nn

from workbench.models.graph import trace


class Truncated(nn.Module):
    """Maps a normalized input batch (N, C, H, W) to the output of one layer; frozen, eval."""

    def __init__(self, extractor: fx.GraphModule, layer: str) -> None:
        super().__init__()
        self.extractor = extractor
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)[self.layer]

    def train(self, mode: bool = True) -> "Truncated":
        return super().train(False)


def _cut(module: nn.Module, outputs: dict[str, str]) -> fx.GraphModule:
    """``module``'s graph returning {key: output of layer outputs[key]} (names of the layer table),
    every node none of them depends on removed."""
    gm, names, _ = trace(module)
    nodes = {name: node for node, name in names.items()}
    missing = [v for v in outputs.values() if v not in nodes]
    if missing:
        raise KeyError(missing[0])
    graph = gm.graph
    for node in [n for n in graph.nodes if n.op == "output"]:
        graph.erase_node(node)
    with graph.inserting_after(list(graph.nodes)[-1]):
        graph.output({key: nodes[name] for key, name in outputs.items()})
    graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def truncate(module: nn.Module, layer: str) -> Truncated:
    """Φ_ℓ for the layer name ``layer`` (see :func:`workbench.models.graph.layer_table`)."""
    from workbench.errors import UserError

    try:
        gm = _cut(module, {layer: layer})
    except KeyError:
        raise UserError(f"unknown layer '{layer}': see `workbench layers` for the names") from None
    phi = Truncated(gm, layer).eval()
    phi.requires_grad_(False)
    return phi


def feature_extractor(module: nn.Module, layers: list[str]) -> fx.GraphModule:
    """Several layers in one pass: maps a batch to {name: output} for layer-table names (a
    module's path for its first call, ``_1``, ``_2`` ... for later ones), computing nothing past
    the last of them. Unlike torchvision's ``create_feature_extractor`` it takes module paths as
    they are (torchvision renames ``relu1_2`` to ``relu1_1``) and leaves other threads alone."""
    from workbench.errors import UserError

    was_training = module.training
    try:
        return _cut(module, {name: name for name in layers})
    except KeyError as exc:
        raise UserError(f"unknown layer '{exc.args[0]}': see `workbench layers` for the names") from None
    finally:
        module.train(was_training)
