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


def _cut(module: nn.Module, outputs: dict[str, str], by: str) -> fx.GraphModule:
    """``module``'s graph returning {key: output of the node named outputs[key]}, dead code removed.

    ``by`` is "layer" (names of the layer table) or "query" (torchvision's node names)."""
    gm, names, queries = trace(module)
    if by == "layer":
        nodes = {name: node for node, name in names.items()}
    else:  # torchvision's rule: a module path stands for the last node inside it
        nodes = {}
        for node, name in names.items():
            parts = queries[name].split(".")
            for depth in range(1, len(parts) + 1):
                nodes[".".join(parts[:depth])] = node
        nodes.update({queries[name]: node for node, name in names.items()})
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
        gm = _cut(module, {layer: layer}, "layer")
    except KeyError:
        raise UserError(f"unknown layer '{layer}': see `workbench layers` for the names") from None
    phi = Truncated(gm, layer).eval()
    phi.requires_grad_(False)
    return phi


def feature_extractor(module: nn.Module, return_nodes: dict[str, str]) -> fx.GraphModule:
    """Like torchvision's ``create_feature_extractor(module, return_nodes)`` (torchvision's node
    names, a dict of outputs), traced once in eval mode by the thread-safe tracer."""
    was_training = module.training
    try:
        return _cut(module, return_nodes, "query")
    finally:
        module.train(was_training)
